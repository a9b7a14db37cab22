-- Settle or extend a batch of deliveries of one queue, each fenced by its lease token.
-- ARGV: 6 values per settlement: id, token, action (ack|retry|release|dead|extend), a1, a2, a3:
--   retry:  a1 = delay_ms, a2 = has_error ('0'|'1'), a3 = error
--   dead:   a1 = reason,   a2 = has_error, a3 = error
--   extend: a1 = lease_ms
-- Returns {-1} if the queue is missing, else {1, then per settlement: code, value}:
-- code 1 done (value = lease_until_ms for extend, else 0), -2 stale receipt.
-- A settlement after another non-extend one for the same id in the batch is stale (the
-- first one ended the lease).
local b = KEYS[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
local now = now_ms()
local sk, lk = key(b, 'st'), key(b, 'leased')
local n = #ARGV / 6
local ids = {}
for i = 1, n do ids[i] = ARGV[(i - 1) * 6 + 1] end
local states = hmget(sk, ids)
local out = {1}
local acked, erred, ended = {}, {}, {}
for i = 1, n do
  local o = (i - 1) * 6
  local id, tok, action = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
  local s = st_get(states[i])
  if not s or s.tok == '' or s.tok ~= tok or ended[id] then
    out[#out + 1] = -2
    out[#out + 1] = 0
  elseif action == 'extend' then
    local u = now + tonumber(ARGV[o + 4])
    redis.call('ZADD', lk, num(u), id)
    out[#out + 1] = 1
    out[#out + 1] = u
  else
    ended[id] = true
    if action == 'ack' then
      acked[#acked + 1] = id
      -- Only a message that failed before (first-failure time set) can have an error.
      if s.ff ~= '' then erred[#erred + 1] = id end
      hist_end(id, s, ev('acked', s.att, nil, now))
    elseif action == 'retry' then
      local d = tonumber(ARGV[o + 4])
      if d < 0 then d = 0 end
      redis.call('ZREM', lk, id)
      local err = nil
      if ARGV[o + 5] == '1' then
        err = ARGV[o + 6]
        redis.call('HSET', key(b, 'err'), id, err)
      else
        redis.call('HDEL', key(b, 'err'), id)
      end
      s.tok = ''
      if s.ff == '' then s.ff = num(now) end
      s.pend = s.pend .. ev('retried', s.att, err, now)
      pend_trim(id, s)
      redis.call('HSET', sk, id, st_put(s))
      wait_again(b, id, now + d, s)
    elseif action == 'release' then
      redis.call('ZREM', lk, id)
      s.tok = ''
      s.pend = s.pend .. ev('released', s.att, nil, now)
      pend_trim(id, s)
      if s.att > 0 then s.att = s.att - 1 end
      redis.call('HSET', sk, id, st_put(s))
      wait_again(b, id, now, s)
    elseif action == 'dead' then
      local reason = ARGV[o + 4]
      local err = nil
      local detail = reason
      if ARGV[o + 5] == '1' then
        err = ARGV[o + 6]
        detail = reason .. ': ' .. err
      end
      hist_end(id, s, ev('dead_lettered', s.att, detail, now))
      to_dead(b, id, reason, err, now, s)
    else
      return redis.error_reply('ferry: unknown settle action ' .. action)
    end
    out[#out + 1] = 1
    out[#out + 1] = 0
  end
end
if #acked > 0 then
  bulk('HDEL', key(b, 'msg'), acked)
  bulk('HDEL', sk, acked)
  bulk('HDEL', key(b, 'err'), erred)
  bulk('ZREM', lk, acked)
end
hist_flush(b, now)
return out
