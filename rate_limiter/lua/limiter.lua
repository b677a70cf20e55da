-- The rate limiter: decide N checks all-or-nothing, each with its own algorithm.
-- The specification is rate_limiter/models.py; this script must match it exactly.
-- KEYS[i]: the state of check i: a hash (token_bucket, gcra, fixed_window,
--          sliding_window) or a sorted set (sliding_log); all KEYS share one slot.
-- ARGV[1]: now in microseconds, or "" to read Redis TIME (production: the only clock)
-- ARGV[2]: "1" to peek (decide, store nothing), else "0"
-- ARGV[3]: TTL slack in ms, added to each key's PEXPIRE
-- ARGV[3+7(i-1)+1..7]: check i: algorithm, limit, capacity, period_us, units, per_us,
--          cost (units/per_us = limit/period_us in lowest terms)
-- returns one {allowed (1/0), limit, remaining, reset_after_ms, retry_after_ms} per
--          check; state is stored only if every check is allowed and it is no peek.
-- Numbers are doubles: every integer here stays below 2^53 (rate_limiter/domain.py
-- refuses limits that would not), and integers are written with %d, never %.14g.

local function idiv(a, b)  -- floor(a / b), exact for integers below 2^53
    local q = math.floor(a / b)
    local r = a - q * b
    if r < 0 then q = q - 1 elseif r >= b then q = q + 1 end
    return q
end

local function ceil_div(a, b)
    return -idiv(-a, b)
end

local function to_ms(us)
    return ceil_div(us, 1000)
end

local function int(x)
    return string.format('%d', x)
end

local function flag(allowed)
    return allowed and 1 or 0
end

local function expire(key, decision, slack)
    redis.call('PEXPIRE', key, int(decision[4] + slack))
end

-- token bucket: hash {tokens (in 1/per_us of a token), time (µs)}
local function token_bucket(key, c, now, slack)
    local full = c.capacity * c.per_us
    local state = redis.call('HMGET', key, 'tokens', 'time')
    local tokens, since = tonumber(state[1]), tonumber(state[2])
    if not tokens then tokens, since = full, now end
    local elapsed = now - since
    if elapsed > 0 then  -- tokens + elapsed * units, capped without overflowing
        if elapsed >= ceil_div(full - tokens, c.units) then
            tokens = full
        else
            tokens = tokens + elapsed * c.units
        end
    end
    local need = c.cost * c.per_us
    local allowed = need <= tokens
    local left = allowed and tokens - need or tokens
    local decision = {flag(allowed), c.capacity, idiv(left, c.per_us),
        to_ms(ceil_div(full - left, c.units)),
        allowed and 0 or to_ms(ceil_div(need - tokens, c.units))}
    return decision, function()
        redis.call('HSET', key, 'tokens', int(left), 'time', int(math.max(since, now)))
        expire(key, decision, slack)
    end
end

-- GCRA: hash {tat (whole µs), ticks (remainder in 1/units µs)}
local function gcra(key, c, now, slack)
    local tau = c.capacity * c.per_us
    local state = redis.call('HMGET', key, 'tat', 'ticks')
    local tat, ticks = tonumber(state[1]), tonumber(state[2])
    local ahead = 0
    if tat and tat >= now then ahead = (tat - now) * c.units + ticks end
    local need = c.cost * c.per_us
    local allowed = ahead + need <= tau
    local after = allowed and ahead + need or ahead
    local decision = {flag(allowed), c.capacity, math.max(0, idiv(tau - after, c.per_us)),
        to_ms(ceil_div(after, c.units)),
        allowed and 0 or to_ms(ceil_div(ahead + need - tau, c.units))}
    return decision, function()
        local whole = idiv(after, c.units)
        redis.call('HSET', key, 'tat', int(now + whole), 'ticks', int(after - whole * c.units))
        expire(key, decision, slack)
    end
end

-- sliding log: sorted set, one member "<µs>:<n>" per unit, scored by its time
local function sliding_log(key, c, now, slack)
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    if newest[2] then now = math.max(now, tonumber(newest[2])) end
    local after = '(' .. int(now - c.period)
    local in_window = redis.call('ZCOUNT', key, after, '+inf')
    local allowed = in_window + c.cost <= c.limit
    local reset_us, retry_us = c.period, 0
    if not allowed then
        reset_us = tonumber(newest[2]) + c.period - now  -- denied: the log is not empty
        local needed = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'WITHSCORES',
            'LIMIT', in_window + c.cost - c.limit - 1, 1)
        retry_us = tonumber(needed[2]) + c.period - now
    end
    local decision = {flag(allowed), c.limit,
        c.limit - in_window - (allowed and c.cost or 0), to_ms(reset_us), to_ms(retry_us)}
    return decision, function()
        redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now - c.period))
        local score = int(now)
        local taken = redis.call('ZCOUNT', key, score, score)  -- keeps members unique
        local batch = {}
        for n = taken + 1, taken + c.cost do
            batch[#batch + 1] = score
            batch[#batch + 1] = score .. ':' .. int(n)
            if #batch >= 1000 or n == taken + c.cost then
                redis.call('ZADD', key, unpack(batch))
                batch = {}
            end
        end
        expire(key, decision, slack)
    end
end

-- fixed window: hash {window (floor(µs / period)), count}
local function fixed_window(key, c, now, slack)
    local state = redis.call('HMGET', key, 'window', 'count')
    local window, count = tonumber(state[1]), tonumber(state[2])
    if not window then window, count = idiv(now, c.period), 0 end
    now = math.max(now, window * c.period)
    if idiv(now, c.period) ~= window then window, count = idiv(now, c.period), 0 end
    local allowed = count + c.cost <= c.limit
    if allowed then count = count + c.cost end
    local to_end = (window + 1) * c.period - now
    local decision = {flag(allowed), c.limit, c.limit - count,
        to_ms(count > 0 and to_end or 0), allowed and 0 or to_ms(to_end)}
    return decision, function()
        redis.call('HSET', key, 'window', int(window), 'count', int(count))
        expire(key, decision, slack)
    end
end

-- sliding window: hash {window, current (its count), previous (the window before)}
local function window_reset(period, elapsed, current, previous)
    if current > 0 then return 2 * period - elapsed end
    if previous > 0 then return period - elapsed end
    return 0
end

local function window_retry(c, elapsed, current, previous)
    local room = c.limit - current - c.cost
    if room >= 0 then
        return c.period - elapsed - idiv(room * c.period, previous)
    end
    return 2 * c.period - elapsed - idiv((c.limit - c.cost) * c.period, current)
end

local function sliding_window(key, c, now, slack)
    local state = redis.call('HMGET', key, 'window', 'current', 'previous')
    local window, current, previous = tonumber(state[1]), tonumber(state[2]), tonumber(state[3])
    if not window then window, current, previous = idiv(now, c.period), 0, 0 end
    now = math.max(now, window * c.period)
    local index = idiv(now, c.period)
    if index ~= window then
        previous = index == window + 1 and current or 0
        current = 0
    end
    local elapsed = now - index * c.period
    local weighted = previous * (c.period - elapsed)
    local room = c.limit - current - c.cost
    local allowed = room >= 0 and weighted <= room * c.period
    local retry_us = allowed and 0 or window_retry(c, elapsed, current, previous)
    if allowed then current = current + c.cost end
    local decision = {flag(allowed), c.limit,
        math.max(0, c.limit - current - ceil_div(weighted, c.period)),
        to_ms(window_reset(c.period, elapsed, current, previous)), to_ms(retry_us)}
    return decision, function()
        redis.call('HSET', key, 'window', int(index), 'current', int(current),
            'previous', int(previous))
        expire(key, decision, slack)
    end
end

local ALGORITHMS = {
    token_bucket = token_bucket,
    gcra = gcra,
    sliding_log = sliding_log,
    fixed_window = fixed_window,
    sliding_window = sliding_window,
}

local now = tonumber(ARGV[1])
if not now then
    local time = redis.call('TIME')
    now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local peek, slack = ARGV[2] == '1', tonumber(ARGV[3])
local decisions, writes, all_allowed = {}, {}, true
for i, key in ipairs(KEYS) do
    local at = 3 + 7 * (i - 1)
    local c = {algorithm = ARGV[at + 1], limit = tonumber(ARGV[at + 2]),
        capacity = tonumber(ARGV[at + 3]), period = tonumber(ARGV[at + 4]),
        units = tonumber(ARGV[at + 5]), per_us = tonumber(ARGV[at + 6]),
        cost = tonumber(ARGV[at + 7])}
    local decide = ALGORITHMS[c.algorithm]
    if not decide then return redis.error_reply('unknown algorithm ' .. tostring(c.algorithm)) end
    decisions[i], writes[i] = decide(key, c, now, slack)
    all_allowed = all_allowed and decisions[i][1] == 1
end
if all_allowed and not peek then
    for _, write in ipairs(writes) do write() end
end
return decisions
