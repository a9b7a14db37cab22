-- Shared helpers, prepended to every queue script by the Rust side.
-- Every key of a queue starts with its base `{prefix:queue}` (one hash slot).
-- Scripts work on whole batches: one HMGET / HSET / ZADD / HDEL per batch instead of
-- one command per message, because Redis time per message is what bounds throughput.
local HIST_TTL = __HIST_TTL__ -- ms history is kept after its last event; 0 = none (set by the driver)
local CHUNK = 1000 -- arguments per command (Lua's unpack has a stack limit); even
local function key(b, s) return b .. ':' .. s end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(x) return string.format('%d', x) end
-- Waiting-set member: zero-padded send sequence then the id, so equal scores
-- (same ready time) sort by send order.
local function member(seq, id) return string.format('%016d', tonumber(seq)) .. '|' .. id end
-- `cmd k args...` in chunks.
local function bulk(cmd, k, args)
  for i = 1, #args, CHUNK do
    redis.call(cmd, k, unpack(args, i, math.min(i + CHUNK - 1, #args)))
  end
end
-- HMGET over any number of fields; missing fields are false.
local function hmget(k, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    local r = redis.call('HMGET', k, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for _, v in ipairs(r) do out[#out + 1] = v end
  end
  return out
end
-- The state of a delivered message (hash `st`):
-- attempts|priority|sequence|first_failed_ms|token|pending history.
-- No record means never delivered: attempt 0, priority and sequence in its waiting-set
-- entry. The pending history holds the events since the record was made (delivered,
-- retried, released, lease_expired); they move to `hist` when the life ends (ack, dead
-- letter), so a delivery costs no history write of its own.
local function st_get(v)
  if not v then return nil end
  local att, pri, seq, ff, tok, pend = string.match(v, '^(%d+)|(%d+)|(%d+)|(%d*)|([^|]*)|(.*)$')
  if not att then return nil end
  return {att = tonumber(att), pri = pri, seq = seq, ff = ff, tok = tok, pend = pend}
end
-- Pending events beyond this size move to `hist` (a message released or retried very
-- often would otherwise drag a growing record through every delivery).
local PEND_MAX = 4096
local function st_put(s)
  return num(s.att) .. '|' .. s.pri .. '|' .. s.seq .. '|' .. s.ff .. '|' .. s.tok .. '|' .. s.pend
end
-- History (hash `hist`: id -> netstrings `len:at|event|attempt|-,` or `…|+detail,`).
-- The events of a life reach it when the life ends (ack, dead letter) or is restarted
-- (requeue): `sent` waits in the stored message (see `sent_of`), the events of the
-- delivered life in the state record (see above), so sending and delivering cost no
-- history write of their own. Zset `hexp` (id -> time of the last life's end) drives
-- pruning; an id due for pruning whose message is live again is kept and re-timed.
local H_ids, H_ev, H_mark = {}, {}, {}
-- One event as a netstring ('' when history is off).
local function ev(event, attempt, detail, now)
  if HIST_TTL == 0 then return '' end
  local e = num(now) .. '|' .. event .. '|' .. num(attempt) .. '|'
  if detail then e = e .. '+' .. detail else e = e .. '-' end
  return #e .. ':' .. e .. ','
end
-- Queues `text` (netstrings) for `id`'s history; `mark`: a life ends here.
local function hist_add(id, text, mark)
  if HIST_TTL == 0 then return end
  if H_ev[id] then H_ev[id] = H_ev[id] .. text else H_ids[#H_ids + 1] = id; H_ev[id] = text end
  if mark then H_mark[id] = true end
end
local function hist(id, event, attempt, detail, now, mark)
  if HIST_TTL == 0 then return end
  hist_add(id, ev(event, attempt, detail, now), mark)
end
-- A message's stored value is its envelope, preceded by its `sent` event as a netstring
-- while history is on (an envelope is MessagePack and never starts with a digit): the
-- event costs no write of its own, and moves into the state record at first delivery.
local function sent_of(v)
  if not v then return '' end
  local n = string.match(v, '^(%d+):')
  if not n then return '' end
  return string.sub(v, 1, #n + tonumber(n) + 2)
end
local function env_of(v)
  if not v then return nil end
  return string.sub(v, #sent_of(v) + 1)
end
-- Moves an oversized pending history from the state record to `hist`.
local function pend_trim(id, s)
  if #s.pend > PEND_MAX then
    hist_add(id, s.pend, false)
    s.pend = ''
  end
end
-- Ends a delivered life in the history: the state record's pending events, then `text`.
local function hist_end(id, s, text)
  hist_add(id, ((s and s.pend) or '') .. text, true)
end
-- Appends the collected events to the history.
local function hist_flush(b, now)
  if #H_ids == 0 then return end
  local hk, xk = key(b, 'hist'), key(b, 'hexp')
  local old = hmget(hk, H_ids)
  local kv, exp = {}, {}
  for i, id in ipairs(H_ids) do
    kv[#kv + 1] = id
    kv[#kv + 1] = (old[i] or '') .. H_ev[id]
    if H_mark[id] then
      exp[#exp + 1] = num(now)
      exp[#exp + 1] = id
    end
  end
  bulk('HSET', hk, kv)
  bulk('ZADD', xk, exp)
  H_ids, H_ev, H_mark = {}, {}, {}
  local due = redis.call('ZRANGEBYSCORE', xk, '-inf', num(now - HIST_TTL), 'LIMIT', 0, 100)
  if #due > 0 then
    -- Kept: ids whose message is live again, and ids with a dead letter (a dead
    -- letter keeps its history until it is requeued or purged).
    local live = hmget(key(b, 'msg'), due)
    local gone, keep = {}, {}
    for i, id in ipairs(due) do
      if live[i] or redis.call('EXISTS', key(b, 'did:' .. id)) == 1 then
        keep[#keep + 1] = num(now); keep[#keep + 1] = id
      else
        gone[#gone + 1] = id
      end
    end
    if #gone > 0 then
      redis.call('HDEL', hk, unpack(gone))
      redis.call('ZREM', xk, unpack(gone))
    end
    bulk('ZADD', xk, keep)
  end
end
-- Removes a live message (any state).
local function forget(b, id)
  redis.call('HDEL', key(b, 'msg'), id)
  redis.call('HDEL', key(b, 'st'), id)
  redis.call('HDEL', key(b, 'err'), id)
  redis.call('ZREM', key(b, 'leased'), id)
end
-- Moves a live message to the dead letters. `s` is its state record (or nil).
-- Indexes: `dead` (all, by death sequence), `dr:<reason>` (by reason), `did:<id>` (by id).
local function to_dead(b, id, reason, err, now, s)
  local dseq = redis.call('INCR', key(b, 'dseq'))
  local dk = key(b, 'dl:' .. dseq)
  local lerr = err
  if not lerr then lerr = redis.call('HGET', key(b, 'err'), id) end
  local ff = num(now)
  if s and s.ff ~= '' then ff = s.ff end
  redis.call('HSET', dk, 'id', id,
    'env', env_of(redis.call('HGET', key(b, 'msg'), id)) or '',
    'pri', (s and s.pri) or '0',
    'att', num((s and s.att) or 0),
    'reason', reason, 'ff', ff, 'dead_at', num(now))
  if lerr then redis.call('HSET', dk, 'err', lerr) end
  redis.call('ZADD', key(b, 'dead'), dseq, dseq)
  redis.call('ZADD', key(b, 'dr:' .. reason), dseq, dseq)
  redis.call('SADD', key(b, 'dreasons'), reason)
  redis.call('ZADD', key(b, 'did:' .. id), dseq, dseq)
  forget(b, id)
end
-- Puts a delivered message back into its waiting set, ready at `at`.
local function wait_again(b, id, at, s)
  redis.call('ZADD', key(b, 'w:' .. s.pri), num(at), member(s.seq, id))
  redis.call('ZADD', key(b, 'prios'), s.pri, s.pri)
end
-- Removes dead letter `s` and its index entries (all deaths, by reason, by id, and
-- the approved set `dapp`).
local function dead_drop(b, s)
  local dk = key(b, 'dl:' .. s)
  local r = redis.call('HMGET', dk, 'id', 'reason')
  redis.call('DEL', dk)
  redis.call('ZREM', key(b, 'dead'), s)
  redis.call('ZREM', key(b, 'dapp'), s)
  if r[2] then
    local rk = key(b, 'dr:' .. r[2])
    redis.call('ZREM', rk, s)
    if redis.call('ZCARD', rk) == 0 then redis.call('SREM', key(b, 'dreasons'), r[2]) end
  end
  if r[1] then redis.call('ZREM', key(b, 'did:' .. r[1]), s) end
end
-- Moves dead letter `s` back into the queue, ready now with attempts reset, unless
-- its id is live again (then it stays as it is). Returns its id if it moved, else nil.
local function dead_revive(b, s, now)
  local dk = key(b, 'dl:' .. s)
  local r = redis.call('HMGET', dk, 'id', 'env', 'pri', 'err', 'ff')
  local id = r[1]
  if not id or redis.call('HEXISTS', key(b, 'msg'), id) == 1 then return nil end
  local p = r[3] or '0'
  local seq = redis.call('INCR', key(b, 'seqctr'))
  redis.call('HSET', key(b, 'msg'), id, r[2] or '')
  -- Attempts start again; the first-failure time and last error stay (a state record
  -- with a first-failure time is what tells an ack to clear the error).
  redis.call('HSET', key(b, 'st'), id, st_put({att = 0, pri = p, seq = num(seq), ff = r[5] or num(now), tok = '', pend = ''}))
  if r[4] then redis.call('HSET', key(b, 'err'), id, r[4]) end
  redis.call('ZADD', key(b, 'w:' .. p), num(now), member(seq, id))
  redis.call('ZADD', key(b, 'prios'), p, p)
  dead_drop(b, s)
  hist(id, 'requeued', 0, nil, now, true)
  return id
end
