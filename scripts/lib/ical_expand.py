"""Expands an iCalendar feed with real parsers, for tests/tests/calendar_e2e.rs.

Usage: ical_expand.py FEED.ics FROM TO
Prints JSON: {uid: [start, ...]} with every occurrence start (UTC, ISO 8601)
between FROM and TO (ISO 8601 dates), as `icalendar` parses the feed and
`recurring-ical-events` expands it (RRULE, TZID, VTIMEZONE), and the same
from `dateutil.rrule` over each event's DTSTART and RRULE, under
"dateutil:<uid>"; and each event's VALARM triggers under "alarms:<uid>".
"""

import datetime
import json
import sys

import icalendar
import recurring_ical_events
from dateutil import rrule

UTC = datetime.timezone.utc


def iso(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    feed, start, end = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(feed, "rb") as f:
        calendar = icalendar.Calendar.from_ical(f.read())
    window = (datetime.date.fromisoformat(start), datetime.date.fromisoformat(end))
    out = {}
    for event in recurring_ical_events.of(calendar).between(*window):
        out.setdefault(str(event["UID"]), []).append(iso(event["DTSTART"].dt))
    for event in calendar.walk("VEVENT"):
        uid = str(event["UID"])
        dtstart = event["DTSTART"].dt
        if "RRULE" in event:
            text = event["RRULE"].to_ical().decode()
            rule = rrule.rrulestr(text, dtstart=dtstart)
            low = datetime.datetime.combine(window[0], datetime.time(), UTC)
            high = datetime.datetime.combine(window[1], datetime.time(), UTC)
            starts = rule.between(low, high, inc=True)
        else:
            starts = [dtstart]
        out["dateutil:" + uid] = [iso(s) for s in starts]
        alarms = [a["TRIGGER"].to_ical().decode() for a in event.walk("VALARM")]
        if alarms:
            out["alarms:" + uid] = alarms
    for starts in out.values():
        starts.sort()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
