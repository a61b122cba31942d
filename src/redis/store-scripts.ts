/**
 * The Lua scripts of RedisChannelStore (channel-store.ts). Each runs
 * atomically in Redis, so two nodes appending to one channel at once get
 * distinct offsets, and a read sees a stream's top, epoch and entries as of
 * one moment. All keys of one call share a channel's hash tag, so they live
 * in one slot of a Redis Cluster.
 *
 * Keys of a channel's stream (KEYS[1..4]):
 *   meta   hash { epoch, top }: one life of the stream; expires `ttl` after
 *          the last append (a stream opened by a read lives `ttl` too)
 *   log    Redis Stream of the kept publications, entry id `<offset>-1`,
 *          field `p` = payload, trimmed to `size` entries (XADD MAXLEN)
 *   last   the epoch of the current (or last) life; outlives meta by
 *          TOMBSTONE_MS, so the next life can tell it "expired"
 *   gone   the epoch of the life that expired, kept TOMBSTONE_MS: a client
 *          recovering from it is told "expired" rather than "epoch"
 * Presence of a channel (KEYS[1..2]): a hash client → entry and a sorted
 * set client → expiry (Redis server time, ms).
 */

/** How long the epoch of an expired stream is remembered (24 h). */
export const TOMBSTONE_MS = 24 * 60 * 60 * 1000;

// ARGV[1] ttl, ARGV[2] fresh epoch (used only if the stream must be created).
const OPEN = `
local TOMB = ${TOMBSTONE_MS}
local function keep_last(epoch, ttl)
  if ttl > 0 then redis.call('SET', KEYS[3], epoch, 'PX', ttl + TOMB) else redis.call('SET', KEYS[3], epoch) end
end
local function open(ttl, fresh)
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if epoch then return epoch, tonumber(redis.call('HGET', KEYS[1], 'top')) end
  local old = redis.call('GET', KEYS[3])
  if old then redis.call('SET', KEYS[4], old, 'PX', TOMB) end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', fresh, 'top', 0)
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  keep_last(fresh, ttl)
  return fresh, 0
end
`;

/** ARGV: ttl, fresh, payload, size → { top, epoch } */
export const APPEND = `${OPEN}
local ttl, size = tonumber(ARGV[1]), tonumber(ARGV[4])
local epoch = open(ttl, ARGV[2])
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, top .. '-1', 'p', ARGV[3])
else
  redis.call('DEL', KEYS[2])
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if size > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
keep_last(epoch, ttl)
return { top, epoch }
`;

/** ARGV: ttl, fresh → { top, epoch } */
export const POSITION = `${OPEN}
local epoch, top = open(tonumber(ARGV[1]), ARGV[2])
return { top, epoch }
`;

/**
 * ARGV: ttl, fresh, size, since epoch ('' for none), since offset, limit
 * → { status, top, epoch, offset1, payload1, offset2, payload2, ... }
 * status: ok | trimmed | expired | epoch | no_history
 */
export const READ = `${OPEN}
local ttl, size, since_epoch, since, limit = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local epoch, top = open(ttl, ARGV[2])
if size == 0 then
  if since_epoch == '' then return { 'ok', top, epoch } end
  return { 'no_history', top, epoch }
end
local from
if since_epoch == '' then
  from = math.max(1, top - limit + 1)
else
  if since_epoch ~= epoch then
    if redis.call('GET', KEYS[4]) == since_epoch then return { 'expired', top, epoch } end
    return { 'epoch', top, epoch }
  end
  if since > top then return { 'epoch', top, epoch } end
  from = since + 1
  if from <= top then
    local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    if #first == 0 or tonumber(string.match(first[1][1], '^(%d+)')) > from then return { 'trimmed', top, epoch } end
  end
end
local out = { 'ok', top, epoch }
if from <= top then
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], from .. '-1', '+', 'COUNT', limit)) do
    out[#out + 1] = string.match(e[1], '^(%d+)')
    out[#out + 1] = e[2][2]
  end
end
return out
`;

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** ARGV: client, entry, ttl. The keys expire with their longest-lived entry. */
export const PRESENCE_ADD = `${NOW}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
redis.call('PEXPIREAT', KEYS[2], last[2])
return 1
`;

/** ARGV: client */
export const PRESENCE_REMOVE = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

/** → { client1, entry1, ... } of the live entries; expired ones are removed. */
export const PRESENCE_LIST = `${NOW}
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  for i = 1, #gone, 500 do
    redis.call('HDEL', KEYS[1], unpack(gone, i, math.min(i + 499, #gone)))
  end
end
return redis.call('HGETALL', KEYS[1])
`;
