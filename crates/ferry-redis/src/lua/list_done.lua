-- List bridge, step 3: forget parked items the ferry queue now holds, or set aside the
-- ones ferry refused (kept raw in the rejected list for an operator), atomically.
-- KEYS: moving, moving_at, rejected (one hash slot).
-- ARGV: pairs of seq, action ('d' = done, 'r' = rejected).
-- Returns the number of parked items removed.
local removed = 0
for i = 1, #ARGV, 2 do
  local seq, action = ARGV[i], ARGV[i + 1]
  if action == 'r' then
    local v = redis.call('HGET', KEYS[1], seq)
    if v then redis.call('LPUSH', KEYS[3], v) end
  end
  removed = removed + redis.call('HDEL', KEYS[1], seq)
  redis.call('ZREM', KEYS[2], seq)
end
return removed
