-- Settle or extend one delivery, fenced by its lease token.
-- ARGV: id, token, action (ack|retry|release|dead|extend), a1, a2, a3:
--   retry:  a1 = delay_ms, a2 = has_error ('0'|'1'), a3 = error
--   dead:   a1 = reason,   a2 = has_error, a3 = error
--   extend: a1 = lease_ms
-- Returns {1} (extend: {1, lease_until_ms}), {-1} queue missing, {-2} stale receipt.
local b = KEYS[1]
local id, tok, action = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
local cur = redis.call('HGET', key(b, 'tok'), id)
if cur ~= tok then return {-2} end
local now = now_ms()
local att = tonumber(redis.call('HGET', key(b, 'att'), id) or '0')
if action == 'extend' then
  local u = now + tonumber(ARGV[4])
  redis.call('ZADD', key(b, 'leased'), num(u), id)
  return {1, u}
elseif action == 'ack' then
  hist(b, id, 'acked', att, nil, now)
  forget(b, id)
elseif action == 'retry' then
  local d = tonumber(ARGV[4])
  if d < 0 then d = 0 end
  redis.call('ZREM', key(b, 'leased'), id)
  redis.call('HDEL', key(b, 'tok'), id)
  local err = nil
  if ARGV[5] == '1' then
    err = ARGV[6]
    redis.call('HSET', key(b, 'err'), id, err)
  else
    redis.call('HDEL', key(b, 'err'), id)
  end
  redis.call('HSETNX', key(b, 'ff'), id, num(now))
  wait_again(b, id, now + d)
  hist(b, id, 'retried', att, err, now)
elseif action == 'release' then
  redis.call('ZREM', key(b, 'leased'), id)
  redis.call('HDEL', key(b, 'tok'), id)
  if att > 0 then redis.call('HINCRBY', key(b, 'att'), id, -1) end
  wait_again(b, id, now)
  hist(b, id, 'released', att, nil, now)
elseif action == 'dead' then
  local reason = ARGV[4]
  local err = nil
  local detail = reason
  if ARGV[5] == '1' then
    err = ARGV[6]
    detail = reason .. ': ' .. err
  end
  hist(b, id, 'dead_lettered', att, detail, now)
  to_dead(b, id, reason, err, now)
else
  return redis.error_reply('ferry: unknown settle action ' .. action)
end
return {1}
