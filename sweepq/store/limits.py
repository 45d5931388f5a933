"""How much the store keeps: the bounds that stop one sweep or one program from filling Redis."""

from __future__ import annotations

EVENTS_MAXLEN = 20000  # entries of the change stream (the controller reads it every pass)
ROWS_CAP = 5000  # logged rows kept per trial (the last ones: curves)
# Values of the sweep metric kept per trial (about 20 bytes each): a program logging millions of
# steps cannot fill Redis. The first ones are kept, because the stopping rules judge early rungs.
HISTORY_CAP = 100_000
OUTPUT_CAP = 1000  # output lines kept in a running trial's stream (sweepq logs --follow)
OUTPUT_TTL = 3600  # seconds a trial's output stream outlives its last line
READ_CHUNK = 2000  # trials per read script call: bounds how long one call blocks Redis
