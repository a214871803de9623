/**
 * Lua scripts run by Redis. Each one is a single atomic step: the events of a batch, the
 * aggregates derived from them, the alerts they trigger and the offsets they cover become
 * visible together or not at all, which is what makes redelivery after a crash harmless.
 */

/**
 * Applies one batch. KEYS: 1 offsets, 2 by-activity, 3 by-cost, 4 agents, 5 alerts-fired,
 * 6 alerts-recent, 7 alerts-outbox, 8 by-start, 9 by-events, 10 by-errors, 11 by-tool-calls,
 * 12 by-max-tool-calls, 13 by-duration, 14 tool names, 15 error codes, 16/17/18 the active,
 * completed and error status sets, 19 the registry of offsets keys, 20 the offsets owner, then per session events,
 * meta, tools, kafka index, recent-errors and the by-agent, per-tool and per-error-code indexes
 * it references. The ranking indexes move in this same step, so a redelivered batch (refused as
 * stale above) can never count twice. ARGV[1] is the JSON header built by
 * buildPlan; ARGV[2..] are the event texts, session by session.
 *
 * Returns {'foreign', cluster_id, topic_id} without writing anything when the stored offsets
 * belong to another cluster or topic than the header's owner (h.own): comparing offsets of two
 * different logs would call new records duplicates. Returns {'stale', {partition, stored_next,
 * ...}} without writing anything when Redis already holds an offset past the start of the batch
 * (the caller drops those records and retries), or {'ok', {alert_json, ...}, {session, count, ...}}.
 */
export const APPLY_BATCH = `
local h = cjson.decode(ARGV[1])
if h.own then
  local o = redis.call('HMGET', KEYS[20], 'cluster_id', 'topic_id')
  if not o[1] and not o[2] then
    -- The owner record was removed from outside while running: the offsets written from now on are ours.
    redis.call('HSET', KEYS[20], 'cluster_id', h.own[1], 'topic_id', h.own[2], 'stamped_at', h.at)
  elseif o[1] ~= h.own[1] or o[2] ~= h.own[2] then
    return {'foreign', o[1] or '', o[2] or ''}
  end
end
local stale = {}
for _, p in ipairs(h.parts) do
  local stored = redis.call('HGET', KEYS[1], p[1])
  if stored and tonumber(stored) > tonumber(p[2]) then
    stale[#stale + 1] = p[1]
    stale[#stale + 1] = stored
  end
end
if #stale > 0 then return {'stale', stale} end

-- Appends 'after:before' gaps to a session's Kafka index, keeping at most h.gapMax in all.
local function appendGaps(kKafka, new)
  local old = redis.call('HGET', kKafka, 'gaps')
  local have = 0
  if old and old ~= '' then have = select(2, string.gsub(old, ',', '')) + 1 end
  if have >= h.gapMax then return end
  local add = table.concat(new, ',', 1, math.min(#new, h.gapMax - have))
  if have > 0 then add = old .. ',' .. add end
  redis.call('HSET', kKafka, 'gaps', add)
end

local r = h.r
local fired = {}
local counts = {}
local function fire(rule, s, agent, value, threshold, message, tool)
  local id = rule .. '|' .. s.id
  if redis.call('SADD', KEYS[5], id) == 1 then
    local a = {alert_id = id, rule = rule, session_id = s.id, agent_id = agent, fired_at = h.at,
      value = value, threshold = threshold, message = message,
      source = {topic = h.topic, partition = s.p, offset = tonumber(s.lo)}}
    if tool then a.tool = tool end
    local j = cjson.encode(a)
    redis.call('HSET', KEYS[7], id, j)
    redis.call('LPUSH', KEYS[6], j)
    redis.call('LTRIM', KEYS[6], 0, h.recent - 1)
    fired[#fired + 1] = j
  end
end

local argi = 2
for _, s in ipairs(h.s) do
  local kEv, kMeta, kTools, kKafka, kErr = KEYS[s.k + 1], KEYS[s.k + 2], KEYS[s.k + 3], KEYS[s.k + 4], KEYS[s.k + 5]
  local last = argi + s.n - 1
  local j = argi
  while j <= last do
    -- unpack is bounded by Lua's C stack; push in slices.
    local e = math.min(j + 999, last)
    redis.call('RPUSH', kEv, unpack(ARGV, j, e))
    j = e + 1
  end
  argi = last + 1

  local cur = redis.call('HMGET', kMeta, 'first_ts', 'last_ts', 'status', 'agent_id')
  local upd = {'session_id', s.id, 'current_step', s.cs}
  if not cur[1] or s.ft < cur[1] then upd[#upd + 1] = 'first_ts'; upd[#upd + 1] = s.ft end
  local lastTs = cur[2]
  if not cur[2] or s.lt > cur[2] then upd[#upd + 1] = 'last_ts'; upd[#upd + 1] = s.lt; lastTs = s.lt end
  if s.st then upd[#upd + 1] = 'status'; upd[#upd + 1] = s.st
  elseif not cur[3] then upd[#upd + 1] = 'status'; upd[#upd + 1] = 'active' end
  local statusKey = {active = KEYS[16], completed = KEYS[17], error = KEYS[18]}
  local newStatus = s.st or cur[3] or 'active'
  if cur[3] and cur[3] ~= newStatus and statusKey[cur[3]] then redis.call('SREM', statusKey[cur[3]], s.id) end
  redis.call('SADD', statusKey[newStatus], s.id)
  local agent = cur[4]
  if not agent then agent = s.a; upd[#upd + 1] = 'agent_id'; upd[#upd + 1] = s.a end
  redis.call('HSET', kMeta, unpack(upd))
  local count = redis.call('HINCRBY', kMeta, 'event_count', s.n)
  -- Zero increments only matter the first time, to create the field.
  local fresh = count == s.n
  if fresh or s.it > 0 then redis.call('HINCRBY', kMeta, 'input_tokens', s.it) end
  if fresh or s.ot > 0 then redis.call('HINCRBY', kMeta, 'output_tokens', s.ot) end
  -- Every session is in every ranking index (score 0 included), so a filtered ranking misses none.
  redis.call('ZADD', KEYS[9], count, s.id)
  local ec
  if fresh or s.ec > 0 then ec = redis.call('HINCRBY', kMeta, 'error_count', s.ec)
  else ec = tonumber(redis.call('HGET', kMeta, 'error_count') or '0') end
  redis.call('ZADD', KEYS[10], ec, s.id)
  local tc
  if fresh or s.tc > 0 then tc = redis.call('HINCRBY', kMeta, 'tool_calls', s.tc)
  else tc = tonumber(redis.call('HGET', kMeta, 'tool_calls') or '0') end
  redis.call('ZADD', KEYS[11], tc, s.id)
  -- The cost index and rule only move when the cost does.
  local cost = nil
  if fresh or s.c ~= '0' then
    cost = redis.call('HINCRBYFLOAT', kMeta, 'cost_usd', s.c)
    redis.call('ZADD', KEYS[3], tonumber(cost), s.id)
  end
  redis.call('ZADD', KEYS[2], 'GT', s.lms, s.id)
  redis.call('ZADD', KEYS[8], 'LT', s.fms, s.id)
  local span = tonumber(redis.call('ZSCORE', KEYS[2], s.id)) - tonumber(redis.call('ZSCORE', KEYS[8], s.id))
  redis.call('ZADD', KEYS[13], math.max(0, span), s.id)
  for _, ag in ipairs(s.ag) do
    redis.call('ZADD', KEYS[ag[1]], 'GT', ag[3], s.id)
  end
  -- The Kafka index names the log its offsets are in (h.own): an index written for another
  -- cluster or topic id is started anew, one written before ids were stored is adopted. Its
  -- last offset only rises, so a reader may trust that no record of the session lies between it
  -- and the stored position (see since: below).
  --
  -- gaps: 'after:before' pairs, comma separated, in offset order: no record of the session lies
  -- strictly between the two offsets, so a reader skips them. Each is noted when the index rises
  -- past it, only where this group applied every record in between: inside this batch, or from
  -- the group's since:<partition> on (a group that started later cannot vouch for what it skipped).
  local ko = redis.call('HMGET', kKafka, 'last_offset', 'partition', 'cluster_id', 'topic_id')
  local idxFresh = fresh or not ko[1]
  if h.own and ko[3] and (ko[3] ~= h.own[1] or ko[4] ~= h.own[2]) then idxFresh = true end
  if idxFresh or ko[2] ~= tostring(s.p) then
    if idxFresh then redis.call('HSET', kKafka, 'topic', h.topic, 'partition', s.p, 'first_offset', s.fo, 'last_offset', s.lo)
    else redis.call('HSET', kKafka, 'last_offset', s.lo) end
    redis.call('HDEL', kKafka, 'gaps')
    if idxFresh and h.own and s.g then appendGaps(kKafka, s.g) end
  elseif tonumber(s.lo) > tonumber(ko[1]) then
    redis.call('HSET', kKafka, 'last_offset', s.lo)
    if h.own then
      local last = tonumber(ko[1])
      local new = {}
      if tonumber(s.fo) - last > h.gap then
        -- since:<p> speaks for this group only while its stored position exists (a reset drops both).
        local since = redis.call('HGET', KEYS[20], 'since:' .. s.p)
        if since and redis.call('HEXISTS', KEYS[1], tostring(s.p)) == 1 then
          local from = math.max(last, tonumber(since) - 1)
          if tonumber(s.fo) - from > h.gap then new[#new + 1] = from .. ':' .. s.fo end
        end
      end
      for _, g in ipairs(s.g or {}) do
        if tonumber(string.match(g, '^(%d+)')) >= last then new[#new + 1] = g end
      end
      if #new > 0 then appendGaps(kKafka, new) end
    end
  end
  if h.own then redis.call('HSET', kKafka, 'cluster_id', h.own[1], 'topic_id', h.own[2]) end

  local toolHit = nil
  local most = 0
  for _, t in ipairs(s.tools) do
    local n = redis.call('HINCRBY', kTools, t[1], t[2])
    if n > most then most = n end
    redis.call('ZADD', KEYS[t[3]], n, s.id)
    redis.call('SADD', KEYS[14], t[1])
    if r.tool and n > r.tool and not toolHit then toolHit = {t[1], n} end
  end
  -- GT: a tool not in this batch may already have more calls than any that is.
  redis.call('ZADD', KEYS[12], 'GT', most, s.id)
  for _, c in ipairs(s.codes) do
    redis.call('ZINCRBY', KEYS[c[3]], c[2], s.id)
    redis.call('SADD', KEYS[15], c[1])
  end
  if #s.et > 0 and r.errN then
    for _, ms in ipairs(s.et) do redis.call('LPUSH', kErr, ms) end
    redis.call('LTRIM', kErr, 0, r.errN - 1)
    local times = redis.call('LRANGE', kErr, 0, -1)
    if #times >= r.errN then
      local lo, hi = math.huge, -math.huge
      for _, t in ipairs(times) do
        local v = tonumber(t)
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
      if hi - lo <= r.errWin then
        fire('error_burst', s, agent, r.errN, r.errN,
          string.format('session %s had %d errors within %d s', s.id, r.errN, math.ceil(r.errWin / 1000)))
      end
    end
    redis.call('EXPIRE', kErr, h.ttl)
  end
  if r.cost and cost and tonumber(cost) > r.cost then
    fire('cost_threshold', s, agent, tonumber(cost), r.cost,
      string.format('session %s has cost $%.2f, above the $%.2f threshold', s.id, tonumber(cost), r.cost))
  end
  if toolHit then
    fire('tool_loop', s, agent, toolHit[2], r.tool,
      string.format('session %s called %s %d times (more than %d)', s.id, toolHit[1], toolHit[2], r.tool), toolHit[1])
  end

  redis.call('EXPIRE', kEv, h.ttl)
  redis.call('EXPIRE', kMeta, h.ttl)
  redis.call('EXPIRE', kTools, h.ttl)
  redis.call('EXPIRE', kKafka, h.ttl)
  local note = cjson.encode({session_id = s.id, count = count, last_ts = lastTs})
  redis.call('PUBLISH', s.ch, note)
  redis.call('PUBLISH', h.upd, note)
  counts[#counts + 1] = s.id
  counts[#counts + 1] = count
end

for i = 1, #h.agents, 1000 do
  redis.call('SADD', KEYS[4], unpack(h.agents, i, math.min(i + 999, #h.agents)))
end
-- since:<partition> in the owner record: every record from that offset up to the stored one was
-- applied in this same step as its session's index. It is set where applying starts without a
-- stored offset (first start, reset) and, for offsets stored before it was kept, at the stored one.
if h.own then
  for _, p in ipairs(h.parts) do
    local stored = redis.call('HGET', KEYS[1], p[1])
    local f = 'since:' .. p[1]
    if not stored then redis.call('HSET', KEYS[20], f, p[2])
    elseif redis.call('HEXISTS', KEYS[20], f) == 0 then redis.call('HSET', KEYS[20], f, stored) end
  end
end
for _, p in ipairs(h.parts) do
  redis.call('HSET', KEYS[1], p[1], p[3])
end
redis.call('SADD', KEYS[19], KEYS[1])
return {'ok', fired, counts}
`;

/**
 * Fires the idle alert for one session if it is still active, still idle and on a partition
 * this instance owns. KEYS: 1 meta, 2 kafka index, 3 by-activity, 4 alerts-fired,
 * 5 alerts-recent, 6 alerts-outbox. ARGV: session id, cutoff ms, JSON list of owned partitions,
 * fired_at ISO, idle seconds, recent list length, topic.
 */
export const FIRE_IDLE = `
local sid = ARGV[1]
local score = redis.call('ZSCORE', KEYS[3], sid)
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
local m = redis.call('HMGET', KEYS[1], 'status', 'agent_id', 'last_ts')
if m[1] ~= 'active' then return false end
local k = redis.call('HMGET', KEYS[2], 'topic', 'partition', 'last_offset')
if k[1] ~= ARGV[7] then return false end
local owned = false
for _, p in ipairs(cjson.decode(ARGV[3])) do
  if tostring(p) == k[2] then owned = true end
end
if not owned then return false end
local id = 'idle|' .. sid
if redis.call('SADD', KEYS[4], id) == 0 then return false end
local a = {alert_id = id, rule = 'idle', session_id = sid, agent_id = m[2], fired_at = ARGV[4],
  value = tonumber(ARGV[5]), threshold = tonumber(ARGV[5]), last_ts = m[3],
  message = string.format('session %s has had no event for more than %d s', sid, tonumber(ARGV[5])),
  source = {topic = k[1], partition = tonumber(k[2]), offset = tonumber(k[3])}}
local j = cjson.encode(a)
redis.call('HSET', KEYS[6], id, j)
redis.call('LPUSH', KEYS[5], j)
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[6]) - 1)
return j
`;

/**
 * Claims the stored offsets of a group and topic for one cluster and topic id.
 * KEYS: 1 offsets, 2 offsets owner. ARGV: cluster id, topic id, action, ISO time.
 * action 'claim': {'matched'} when the owner is the same; {'mismatch', cluster, topic} when it
 * is not; {'legacy'} when offsets exist without an owner (written before owners were stored;
 * nothing is written, the caller decides); {'fresh'} when nothing is stored (the owner is stamped).
 * action 'adopt': stamps the owner over legacy offsets ({'adopted'}), unless one appeared meanwhile
 * (then as 'claim'). action 'reset': drops the offsets and stamps the new owner ({'reset'}),
 * unless the owner already is the new one (another instance reset first): then {'matched'}.
 */
export const CLAIM_POSITIONS = `
local cluster, topic, action, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local o = redis.call('HMGET', KEYS[2], 'cluster_id', 'topic_id')
if action == 'reset' then
  -- Another instance of the group reset them a moment ago: its offsets are already the new log's.
  if o[1] == cluster and o[2] == topic then return {'matched'} end
  redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'cluster_id', cluster, 'topic_id', topic, 'stamped_at', at)
  return {'reset'}
end
if o[1] or o[2] then
  if o[1] == cluster and o[2] == topic then return {'matched'} end
  return {'mismatch', o[1] or '', o[2] or ''}
end
if redis.call('EXISTS', KEYS[1]) == 1 and action ~= 'adopt' then return {'legacy'} end
redis.call('HSET', KEYS[2], 'cluster_id', cluster, 'topic_id', topic, 'stamped_at', at)
if action == 'adopt' then return {'adopted'} end
return {'fresh'}
`;
