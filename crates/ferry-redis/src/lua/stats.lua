-- Counts by state: {1, ready, delayed, in_flight, dead, oldest_ready_ms|-1}, or {-1} if
-- the queue is missing. The oldest ready message is the lowest score at most now over
-- the waiting sets (a score is when the message became deliverable): one lookup per
-- priority.
local b = KEYS[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
local now = now_ms()
local ready, delayed, oldest = 0, 0, -1
for _, p in ipairs(redis.call('ZRANGE', key(b, 'prios'), 0, -1)) do
  local wk = key(b, 'w:' .. p)
  ready = ready + redis.call('ZCOUNT', wk, '-inf', num(now))
  delayed = delayed + redis.call('ZCOUNT', wk, '(' .. num(now), '+inf')
  local first = redis.call('ZRANGE', wk, 0, 0, 'WITHSCORES')
  if first[2] then
    local at = tonumber(first[2])
    if at <= now and (oldest < 0 or at < oldest) then oldest = at end
  end
end
return {1, ready, delayed, redis.call('ZCARD', key(b, 'leased')), redis.call('ZCARD', key(b, 'dead')), oldest}
