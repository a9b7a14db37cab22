-- Counts by state: {1, ready, delayed, in_flight, dead}, or {-1} if the queue is missing.
local b = KEYS[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
local now = now_ms()
local ready, delayed = 0, 0
for _, p in ipairs(redis.call('ZRANGE', key(b, 'prios'), 0, -1)) do
  local wk = key(b, 'w:' .. p)
  ready = ready + redis.call('ZCOUNT', wk, '-inf', num(now))
  delayed = delayed + redis.call('ZCOUNT', wk, '(' .. num(now), '+inf')
end
return {1, ready, delayed, redis.call('ZCARD', key(b, 'leased')), redis.call('ZCARD', key(b, 'dead'))}
