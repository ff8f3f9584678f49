-- A topic as it stands: its epoch and offset, the id of the commit that left it so, its entities, their expiry times, when each
-- last changed and, when ARGV[2] is "1", its history. A topic never seen gets an epoch now (ARGV[1]), so a write
-- planned against it is committed against that epoch; a topic whose keys were lost (Redis
-- restarted empty, FLUSHALL) gets a new one, which tells every follower it must start again.
--
-- KEYS: meta, state, expiries, changed, history (one topic's, under one hash tag)
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'epoch', ARGV[1], 'offset', '0')
  -- A name only read (subscribed to, never written) is forgotten after a day, so such
  -- names cannot pile up; the first write keeps it.
  redis.call('EXPIRE', meta, 86400)
end
local head = redis.call('HMGET', meta, 'epoch', 'offset', 'last')
local state = redis.call('HGETALL', KEYS[2])
local expiries = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
local changed = redis.call('HGETALL', KEYS[4])
local history = {}
if ARGV[2] == '1' then
  history = redis.call('XRANGE', KEYS[5], '-', '+')
end
return {head[1], head[2], state, expiries, changed, history, head[3] or ''}
