-- Commits one request's writes, whole or not at all: for every topic, checks that it still
-- stands where the write was planned against it — its epoch, its offset, and the commit that
-- left it there (`last`), since an instance plans a topic's next write before the one before
-- it has committed, and another instance's commit may reach the same offset; then, for every topic, sets and deletes its
-- entities, their expiry times and when they last changed, appends the events to its history (trimmed to what it
-- keeps), advances its offset and publishes the events to the instances that follow it; and
-- records the request's idempotency answer. Redis runs a script alone, so no other write
-- comes in between, and no instance sees an event of a request that did not commit.
--
-- KEYS: for each topic: meta, state, expiries, changed, history; then the set of topics, the zset of
--       topics by their next expiry, and the idempotency key (unused without one).
-- ARGV: topics, idempotency answer ('' for none), its lifetime in seconds, the claim the
--       request holds on its key; then per topic:
--       name, epoch, offset planned against, the commit it was planned after ('' for none),
--       this commit's id, events kept, when (ms), #upserts, #deletes, #events,
--       upserts (id, payload, expiry or ''), deletes (id), events (offset, frame), message.
-- Returns {'ok'}; {'conflict', topic} when a topic moved since it was read; {'claim_lost'}
-- when the request's idempotency claim expired and another request took the key.
local topics = tonumber(ARGV[1])
if ARGV[2] ~= '' and redis.call('GET', KEYS[topics * 5 + 3]) ~= ARGV[4] then
  return {'claim_lost'}
end
local at = 5
local writes = {}
for i = 0, topics - 1 do
  local w = {keys = i * 5, name = ARGV[at], epoch = ARGV[at + 1], offset = ARGV[at + 2],
             after = ARGV[at + 3], id = ARGV[at + 4], keep = ARGV[at + 5], when = ARGV[at + 6],
             upserts = tonumber(ARGV[at + 7]), deletes = tonumber(ARGV[at + 8]),
             events = tonumber(ARGV[at + 9]), first = at + 10}
  at = w.first + w.upserts * 3 + w.deletes + w.events * 2 + 1
  local head = redis.call('HMGET', KEYS[w.keys + 1], 'epoch', 'offset', 'last')
  if head[1] ~= w.epoch or head[2] ~= w.offset or (head[3] or '') ~= w.after then
    return {'conflict', w.name}
  end
  writes[i + 1] = w
end
local all_topics, expiring = KEYS[topics * 5 + 1], KEYS[topics * 5 + 2]
for _, w in ipairs(writes) do
  local meta, state, expiries, changed, history = KEYS[w.keys + 1], KEYS[w.keys + 2],
    KEYS[w.keys + 3], KEYS[w.keys + 4], KEYS[w.keys + 5]
  local j = w.first
  for _ = 1, w.upserts do
    redis.call('HSET', state, ARGV[j], ARGV[j + 1])
    redis.call('HSET', changed, ARGV[j], w.when)
    if ARGV[j + 2] == '' then
      redis.call('ZREM', expiries, ARGV[j])
    else
      redis.call('ZADD', expiries, ARGV[j + 2], ARGV[j])
    end
    j = j + 3
  end
  for _ = 1, w.deletes do
    redis.call('HDEL', state, ARGV[j])
    redis.call('HDEL', changed, ARGV[j])
    redis.call('ZREM', expiries, ARGV[j])
    j = j + 1
  end
  local last = w.offset
  for _ = 1, w.events do
    -- Offset 1 starts a history: whatever an older epoch left in the stream goes, or its
    -- higher ids would refuse this one.
    if ARGV[j] == '1' then
      redis.call('DEL', history)
    end
    redis.call('XADD', history, 'MAXLEN', w.keep, ARGV[j] .. '-0', 'f', ARGV[j + 1])
    last = ARGV[j]
    j = j + 2
  end
  redis.call('HSET', meta, 'offset', last, 'last', w.id)
  if w.events > 0 then
    -- Written now: kept for good (a topic only read expires, see read.lua).
    redis.call('PERSIST', meta)
    redis.call('SADD', all_topics, w.name)
  end
  local soonest = redis.call('ZRANGE', expiries, 0, 0, 'WITHSCORES')
  if #soonest == 0 then
    redis.call('ZREM', expiring, w.name)
  else
    redis.call('ZADD', expiring, soonest[2], w.name)
  end
  if w.events > 0 then
    redis.call('PUBLISH', 'pb:{' .. w.name .. '}:events', ARGV[j])
  end
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[topics * 5 + 3], ARGV[2], 'EX', ARGV[3])
end
return {'ok'}
