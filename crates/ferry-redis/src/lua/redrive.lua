-- Approving dead letters and re-driving the approved ones. ARGV[1] = op:
--   approve_ids: ids...                      -> {1, newly approved}
--   approve_all: cursor (-1 = start), limit  -> {1, newly approved, next cursor (-1 = done)}
--   redrive:     max                         -> {1, ids moved...}
-- {-1} if the queue is missing.
-- The approval of dead letter `s` is its membership in zset `dapp` (score = its death
-- sequence, so oldest death first). It belongs to that death: `dead_drop` removes it
-- with the dead letter, and a new death is a new sequence, not approved.
-- A re-drive is this one script: Redis runs scripts alone, so the approved ones it
-- reads and moves are the claim; a concurrent caller (any process) sees them gone.
local b = KEYS[1]
local op = ARGV[1]
if redis.call('EXISTS', key(b, 'opts')) == 0 then return {-1} end
local app = key(b, 'dapp')
local out = {1}
if op == 'approve_ids' then
  local n = 0
  for i = 2, #ARGV do
    for _, s in ipairs(redis.call('ZRANGE', key(b, 'did:' .. ARGV[i]), 0, -1)) do
      n = n + redis.call('ZADD', app, 'NX', s, s)
    end
  end
  out[2] = n
  return out
elseif op == 'approve_all' then
  -- Oldest first above the cursor, in chunks so a million never block Redis.
  local lo = '-inf'
  if tonumber(ARGV[2]) >= 0 then lo = '(' .. ARGV[2] end
  local limit = tonumber(ARGV[3])
  local batch = redis.call('ZRANGEBYSCORE', key(b, 'dead'), lo, '+inf', 'LIMIT', 0, limit)
  local n = 0
  for _, s in ipairs(batch) do n = n + redis.call('ZADD', app, 'NX', s, s) end
  out[2] = n
  if #batch < limit then out[3] = -1 else out[3] = tonumber(batch[#batch]) end
  return out
elseif op == 'redrive' then
  local max = tonumber(ARGV[2])
  local now = now_ms()
  local pos = 0
  -- Approved ones whose id is live again stay (and stay approved): skip past them.
  while #out - 1 < max do
    local chunk = redis.call('ZRANGE', app, pos, pos + 499)
    if #chunk == 0 then break end
    local kept = 0
    for _, s in ipairs(chunk) do
      if #out - 1 >= max then break end
      local id = dead_revive(b, s, now)
      if id then out[#out + 1] = id else kept = kept + 1 end
    end
    -- Moved ones left the set; only the kept ones are still before the next chunk.
    pos = pos + kept
  end
  hist_flush(b, now)
  return out
else
  return redis.error_reply('ferry: unknown re-drive op ' .. op)
end
