-- Dead-letter operations. ARGV[1] = op:
--   list:    offset, limit, has_reason, reason   -> {1, records...}
--   get:     id                                  -> {1, record} or {1}
--   requeue: all ('0'|'1'), ids...               -> {1, n}
--   delete:  all ('0'|'1'), ids...               -> {1, n}
-- A record is 9 values: id, envelope, priority, attempts, reason, has_error, error,
-- first_failed_at_ms, dead_at_ms. Oldest death first. {-1} if the queue is missing.
local b = KEYS[1]
local op = ARGV[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
local dz = key(b, 'dead')
local function rec(out, dk)
  local r = redis.call('HMGET', dk, 'id', 'env', 'pri', 'att', 'reason', 'err', 'ff', 'dead_at')
  out[#out + 1] = r[1] or ''
  out[#out + 1] = r[2] or ''
  out[#out + 1] = r[3] or '0'
  out[#out + 1] = r[4] or '0'
  out[#out + 1] = r[5] or ''
  if r[6] then out[#out + 1] = '1'; out[#out + 1] = r[6] else out[#out + 1] = '0'; out[#out + 1] = '' end
  out[#out + 1] = r[7] or '0'
  out[#out + 1] = r[8] or '0'
end
local out = {1}
if op == 'list' then
  local offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
  local filter = nil
  if ARGV[4] == '1' then filter = ARGV[5] end
  local skipped, taken = 0, 0
  for _, s in ipairs(redis.call('ZRANGE', dz, 0, -1)) do
    if taken >= limit then break end
    local dk = key(b, 'dl:' .. s)
    if not filter or redis.call('HGET', dk, 'reason') == filter then
      if skipped < offset then
        skipped = skipped + 1
      else
        rec(out, dk)
        taken = taken + 1
      end
    end
  end
  return out
elseif op == 'get' then
  for _, s in ipairs(redis.call('ZREVRANGE', dz, 0, -1)) do
    local dk = key(b, 'dl:' .. s)
    if redis.call('HGET', dk, 'id') == ARGV[2] then
      rec(out, dk)
      return out
    end
  end
  return out
end
local all = ARGV[2] == '1'
local want = {}
for i = 3, #ARGV do want[ARGV[i]] = true end
local n = 0
if op == 'requeue' then
  local now = now_ms()
  -- Newest first, so the newest death of an id wins and older ones stay.
  for _, s in ipairs(redis.call('ZREVRANGE', dz, 0, -1)) do
    local dk = key(b, 'dl:' .. s)
    local r = redis.call('HMGET', dk, 'id', 'env', 'pri', 'err')
    local id = r[1]
    if id and (all or want[id]) and redis.call('HEXISTS', key(b, 'msg'), id) == 0 then
      local p = r[3] or '0'
      local seq = redis.call('INCR', key(b, 'seqctr'))
      redis.call('HSET', key(b, 'msg'), id, r[2] or '')
      redis.call('HSET', key(b, 'pri'), id, p)
      redis.call('HSET', key(b, 'seq'), id, seq)
      redis.call('HSET', key(b, 'att'), id, 0)
      if r[4] then redis.call('HSET', key(b, 'err'), id, r[4]) end
      redis.call('ZADD', key(b, 'w:' .. p), num(now), member(seq, id))
      redis.call('ZADD', key(b, 'prios'), p, p)
      redis.call('DEL', dk)
      redis.call('ZREM', dz, s)
      hist(b, id, 'requeued', 0, nil, now)
      n = n + 1
    end
  end
elseif op == 'delete' then
  for _, s in ipairs(redis.call('ZRANGE', dz, 0, -1)) do
    local dk = key(b, 'dl:' .. s)
    if all or want[redis.call('HGET', dk, 'id') or ''] then
      redis.call('DEL', dk)
      redis.call('ZREM', dz, s)
      n = n + 1
    end
  end
else
  return redis.error_reply('ferry: unknown dead-letter op ' .. op)
end
out[2] = n
return out
