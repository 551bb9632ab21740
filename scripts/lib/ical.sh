# The Python that checks the calendar feed against real iCalendar parsers
# (tests/tests/calendar_e2e.rs runs scripts/lib/ical_expand.py with it):
# a venv under the cache with pinned icalendar and recurring-ical-events
# from PyPI. Sourced, not run; needs common.sh.

ICAL_VENV="$TODO_EVENTS_CACHE/pyenv-ical"
ICAL_PACKAGES=(icalendar==7.3.0 recurring-ical-events==3.8.2 python-dateutil==2.9.0.post0)

# ical_python: creates the venv once (and again if a package is missing),
# then prints its interpreter's path.
ical_python() {
  local python="$ICAL_VENV/bin/python"
  if ! "$python" -c 'import icalendar, recurring_ical_events, dateutil' >/dev/null 2>&1; then
    python3 -m venv "$ICAL_VENV" >&2
    "$ICAL_VENV/bin/pip" install --quiet --disable-pip-version-check "${ICAL_PACKAGES[@]}" >&2
  fi
  echo "$python"
}
