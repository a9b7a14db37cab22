-- Idempotency store, one key per idempotency key (KEYS[1]).
-- Value: 'p|<token>|<until_ms>' (claimed, in progress) or 'd' (done; expires by PX).
-- ARGV: op (claim|extend|complete|release), token, ms (lease or retention).
-- claim returns {0} acquired, {1} suspect, {2, until_ms} busy, {3} done.
-- extend/complete return {0} ok or {-2} lost; release returns {0}.
local k = KEYS[1]
local op, tok, ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local SUSPECT_KEEP = 86400000 -- an expired claim stays visible (as suspect) this long
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', k)
local held_tok, held_until = nil, nil
if v and string.sub(v, 1, 2) == 'p|' then
  local sep = string.find(v, '|', 3, true)
  held_tok = string.sub(v, 3, sep - 1)
  held_until = tonumber(string.sub(v, sep + 1))
end
local function put_claim()
  local u = now + ms
  redis.call('SET', k, 'p|' .. tok .. '|' .. string.format('%d', u), 'PX', string.format('%d', ms + SUSPECT_KEEP))
end
if op == 'claim' then
  if v == 'd' then return {3} end
  if held_tok and held_until > now then return {2, held_until} end
  put_claim()
  if held_tok then return {1} end
  return {0}
elseif op == 'extend' then
  if held_tok ~= tok then return {-2} end
  put_claim()
  return {0}
elseif op == 'complete' then
  if held_tok ~= tok then return {-2} end
  redis.call('SET', k, 'd', 'PX', string.format('%d', math.max(ms, 1)))
  return {0}
elseif op == 'release' then
  if held_tok == tok then redis.call('DEL', k) end
  return {0}
end
return redis.error_reply('ferry: unknown idempotency op ' .. op)
