-- Claim up to N due jobs for one worker: promote due scheduled jobs, return parked jobs
-- whose lane reopened, then pop the best ready ones and lease each (owner, attempts + 1,
-- deadline in the leases set) unless its lane holds it back: an open circuit breaker,
-- the lane's concurrency cap, or its rate limit. Held-back jobs wait in their lane's
-- parked set with their ready score (order kept) and use no attempt.
-- KEYS[1]: scheduled ZSET; KEYS[2]: ready ZSET; KEYS[3]: leases ZSET (id -> deadline ms)
-- KEYS[4]: sequence counter; KEYS[5]: journal stream; KEYS[6]: policies hash
--          (job type -> JSON {concurrency?, rate?, burst?, breaker?: {ratio, min_calls,
--          window_ms, cooldown_ms, probes}}); KEYS[7]: in-flight hash (lane -> running)
-- KEYS[8]: parked lanes SET
-- ARGV[1]: now in ms, or "" to read Redis TIME
-- ARGV[2]: worker id; ARGV[3]: N; ARGV[4]: lease in ms
-- ARGV[5]: job hash key prefix; ARGV[6]: lane key prefix (.. 'breaker:' / 'rate:' /
--          'parked:' .. lane); all prefixes carry KEYS' hash tag, so one slot
-- ARGV[7]: at most this many scheduled jobs promoted per call (bounds the script's work)
-- ARGV[8]: "1" to journal, "" not to; ARGV[9]: journal backlog cap (0: none): at or
--          above it nothing is claimed, so a PostgreSQL outage slows dispatch instead of
--          growing the journal without bound
-- returns one {id, type, payload, priority, attempts, max_attempts, run_at, deadline}
--          per claimed job, best first; attempts (after the increment) is the fencing
--          token that heartbeat, ack and nack must present.

local function int(x) return string.format('%d', x) end

local now = tonumber(ARGV[1])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local worker, n, lease_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local prefix, lanes = ARGV[5], ARGV[6]
local journal, backlog_cap = ARGV[8] == '1', tonumber(ARGV[9])
local out = {}
if journal and backlog_cap > 0 and redis.call('XLEN', KEYS[5]) >= backlog_cap then
    return out
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now), 'LIMIT', 0, ARGV[7])
for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    local priority = tonumber(redis.call('HGET', prefix .. id, 'priority'))
    if priority then
        local seq = redis.call('INCR', KEYS[4])
        redis.call('ZADD', KEYS[2], int((9 - priority) * 562949953421312 + seq), id)
        redis.call('HSET', prefix .. id, 'state', 'queued')
    end
end
if n < 1 then return out end

local policies = {}
local function policy(job_type)
    if policies[job_type] == nil then
        local raw = redis.call('HGET', KEYS[6], job_type)
        policies[job_type] = raw and cjson.decode(raw) or false
    end
    return policies[job_type]
end

-- How many more jobs of `lane` may start now (math.huge: no limit).
local function room(lane, job_type)
    local p = policy(job_type)
    if not p then return math.huge end
    local left = math.huge
    if p.concurrency then
        left = p.concurrency - tonumber(redis.call('HGET', KEYS[7], lane) or '0')
    end
    if p.breaker then
        local b = redis.call('HMGET', lanes .. 'breaker:' .. lane, 'state', 'until', 'probes')
        if b[1] == 'open' then
            if now < tonumber(b[2]) then return 0 end
            left = math.min(left, p.breaker.probes)  -- cooled down: half-open on first take
        elseif b[1] == 'half_open' then
            if now >= tonumber(b[2]) then b[3] = '0' end  -- probes lost: allow a new round
            left = math.min(left, p.breaker.probes - tonumber(b[3]))
        end
    end
    if p.rate then
        local r = redis.call('HMGET', lanes .. 'rate:' .. lane, 'tokens', 'at')
        local burst = p.burst or math.max(1, p.rate)
        local tokens = burst
        if r[1] then
            tokens = math.min(burst, tonumber(r[1]) + (now - tonumber(r[2])) * p.rate / 1000)
        end
        left = math.min(left, math.floor(tokens))
    end
    return left
end

-- Record that one job of `lane` starts: a rate token, a half-open probe.
local function take(lane, job_type)
    local p = policy(job_type)
    if not p then return end
    if p.breaker then
        local key = lanes .. 'breaker:' .. lane
        local b = redis.call('HMGET', key, 'state', 'until')
        if b[1] == 'open' or (b[1] == 'half_open' and now >= tonumber(b[2])) then
            redis.call('HSET', key, 'state', 'half_open', 'probes', 0, 'successes', 0,
                'until', int(now + p.breaker.cooldown_ms))
        end
        if b[1] == 'open' or b[1] == 'half_open' then redis.call('HINCRBY', key, 'probes', 1) end
    end
    if p.rate then
        local key = lanes .. 'rate:' .. lane
        local r = redis.call('HMGET', key, 'tokens', 'at')
        local burst = p.burst or math.max(1, p.rate)
        local tokens = burst
        if r[1] then
            tokens = math.min(burst, tonumber(r[1]) + (now - tonumber(r[2])) * p.rate / 1000)
        end
        redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'at', int(now))
        redis.call('PEXPIRE', key, int(math.ceil(burst / p.rate * 1000) + 1000))
    end
end

-- Parked jobs whose lane has room again go back to the ready set, scores kept.
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[8])) do
    local parked = lanes .. 'parked:' .. lane
    local first = redis.call('ZRANGE', parked, 0, 0)
    local job_type = first[1] and redis.call('HGET', prefix .. first[1], 'type')
    if not first[1] then
        redis.call('SREM', KEYS[8], lane)
    elseif not job_type then
        redis.call('ZREM', parked, first[1])  -- deleted while parked (a purge)
    else
        local fit = math.min(n, room(lane, job_type))
        if fit > 0 then
            local back = redis.call('ZRANGE', parked, 0, fit - 1, 'WITHSCORES')
            for i = 1, #back, 2 do
                redis.call('ZADD', KEYS[2], back[i + 1], back[i])
                redis.call('ZREM', parked, back[i])
            end
            if redis.call('ZCARD', parked) == 0 then redis.call('SREM', KEYS[8], lane) end
        end
    end
end

local deadline = now + lease_ms
local scanned, scan_limit = 0, 4 * n + 100
while #out < n and scanned < scan_limit do
    local popped = redis.call('ZPOPMIN', KEYS[2], n - #out)
    if #popped == 0 then break end
    for i = 1, #popped, 2 do
        scanned = scanned + 1
        local id, score = popped[i], popped[i + 1]
        local key = prefix .. id
        local f = redis.call('HMGET', key, 'type', 'lane')
        if f[1] then
            local lane = f[2] or f[1]
            if room(lane, f[1]) < 1 then
                redis.call('ZADD', lanes .. 'parked:' .. lane, score, id)
                redis.call('SADD', KEYS[8], lane)
            else
                take(lane, f[1])
                redis.call('HINCRBY', KEYS[7], lane, 1)
                local attempts = redis.call('HINCRBY', key, 'attempts', 1)
                redis.call('HSET', key, 'owner', worker, 'state', 'running')
                redis.call('ZADD', KEYS[3], int(deadline), id)
                local g = redis.call('HMGET', key, 'payload', 'priority', 'max_attempts', 'run_at')
                out[#out + 1] = {id, f[1], g[1], g[2], attempts, g[3], g[4], int(deadline)}
                if journal then
                    redis.call('XADD', KEYS[5], '*', 'e', 'started', 'id', id, 't', f[1],
                        'a', attempts)
                end
            end
        end
    end
end
return out
