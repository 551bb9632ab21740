-- Push subscriptions moved to the notification function, which owns them
-- in its own table (functions/notification/migrations/V1): task-api no
-- longer serves /api/devices, so this table has no owner and no reader.
-- Nothing is copied: a browser re-registers its subscription at
-- notification on its next visit (the web client does so on load).
DROP TABLE IF EXISTS devices;
