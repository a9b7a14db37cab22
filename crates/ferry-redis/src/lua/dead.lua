-- Dead-letter operations. ARGV[1] = op:
--   list:        offset, limit, has_reason, reason, approved ('' | '1' | '0')
--                                                  -> {1, records...}
--   get:         id                                -> {1, record} or {1}
--   requeue_ids: ids...                            -> {1, n}
--   delete_ids:  ids...                            -> {1, n}
--   requeue_all: cursor (-1 = start), limit        -> {1, n, next_cursor (-1 = done)}
--   delete_all:  limit, hi (-1 = start)            -> {1, n, hi (-1 = done)}
-- A record is 9 values: id, envelope, priority, attempts, reason, has_error, error,
-- first_failed_at_ms, dead_at_ms. Oldest death first. {-1} if the queue is missing.
-- The `*_all` ops work in chunks so a million dead letters never block Redis in one
-- script; the caller loops.
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
local function drop(s) dead_drop(b, s) end
local now = now_ms()
-- Requeues dead letter `s` unless its id is live again or `s` is not the newest death
-- of its id (older deaths stay); returns 1 if requeued.
local function requeue(s)
  local id = redis.call('HGET', key(b, 'dl:' .. s), 'id')
  if not id then return 0 end
  local newest = redis.call('ZRANGE', key(b, 'did:' .. id), -1, -1)
  if newest[1] ~= s then return 0 end
  if dead_revive(b, s, now) then return 1 end
  return 0
end
-- Approval filter of a list: ARGV[6] '' (none), '1' approved only, '0' unapproved only.
local function wanted(s, want, reason)
  if want == '1' then
    if reason and redis.call('HGET', key(b, 'dl:' .. s), 'reason') ~= reason then return false end
    return true
  end
  return not redis.call('ZSCORE', key(b, 'dapp'), s)
end
local out = {1}
if op == 'list' then
  local offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
  local idx = dz
  if ARGV[4] == '1' then idx = key(b, 'dr:' .. ARGV[5]) end
  local want = ARGV[6] or ''
  if want == '' then
    if limit > 0 then
      for _, s in ipairs(redis.call('ZRANGE', idx, num(offset), num(offset + limit - 1))) do
        rec(out, key(b, 'dl:' .. s))
      end
    end
    return out
  end
  -- Filtered by approval: walk the smaller side's index in chunks. Approved only walks
  -- `dapp` (checking the reason); unapproved only walks the reason's (or the whole)
  -- index skipping approved ones, so either walk passes over at most |dapp| extra.
  local reason = nil
  if ARGV[4] == '1' then reason = ARGV[5] end
  if want == '1' then idx = key(b, 'dapp') end
  local pos, skipped, taken = 0, 0, 0
  while taken < limit do
    local chunk = redis.call('ZRANGE', idx, pos, pos + 499)
    if #chunk == 0 then break end
    for _, s in ipairs(chunk) do
      if taken >= limit then break end
      if wanted(s, want, reason) then
        if skipped < offset then skipped = skipped + 1
        else rec(out, key(b, 'dl:' .. s)); taken = taken + 1 end
      end
    end
    pos = pos + 500
  end
  return out
elseif op == 'get' then
  local newest = redis.call('ZRANGE', key(b, 'did:' .. ARGV[2]), -1, -1)
  if newest[1] then rec(out, key(b, 'dl:' .. newest[1])) end
  return out
end
local n = 0
if op == 'requeue_ids' then
  -- The newest death of an id is requeued; older ones stay.
  for i = 2, #ARGV do
    local newest = redis.call('ZRANGE', key(b, 'did:' .. ARGV[i]), -1, -1)
    if newest[1] then n = n + requeue(newest[1]) end
  end
elseif op == 'delete_ids' then
  for i = 2, #ARGV do
    for _, s in ipairs(redis.call('ZRANGE', key(b, 'did:' .. ARGV[i]), 0, -1)) do
      drop(s)
      n = n + 1
    end
  end
elseif op == 'requeue_all' then
  -- Oldest first above the cursor, so requeued messages keep their order; only the
  -- newest death of an id is requeued (see `requeue`).
  local lo = '-inf'
  if tonumber(ARGV[2]) >= 0 then lo = '(' .. ARGV[2] end
  local limit = tonumber(ARGV[3])
  local batch = redis.call('ZRANGEBYSCORE', dz, lo, '+inf', 'LIMIT', 0, limit)
  for _, s in ipairs(batch) do n = n + requeue(s) end
  out[2] = n
  if #batch < limit then out[3] = -1 else out[3] = tonumber(batch[#batch]) end
  hist_flush(b, now)
  return out
elseif op == 'delete_all' then
  -- Up to the newest dead letter when the purge began: later arrivals stay, and a
  -- purge racing a stream of new dead letters still ends.
  local hi = tonumber(ARGV[3])
  if hi < 0 then
    local top = redis.call('ZRANGE', dz, -1, -1)
    if not top[1] then out[2] = 0; out[3] = -1; return out end
    hi = tonumber(top[1])
  end
  local batch = redis.call('ZRANGEBYSCORE', dz, '-inf', num(hi), 'LIMIT', 0, tonumber(ARGV[2]))
  for _, s in ipairs(batch) do drop(s); n = n + 1 end
  out[2] = n
  if #batch < tonumber(ARGV[2]) then out[3] = -1 else out[3] = hi end
  return out
else
  return redis.error_reply('ferry: unknown dead-letter op ' .. op)
end
hist_flush(b, now)
out[2] = n
return out
