-- Record one delivery to the webhook sink: its totals, and its idempotency key's successes.
-- KEYS[1]: hash, idempotency key -> deliveries of it answered 2xx
-- KEYS[2]: hash of totals: deliveries, duplicates, hook:<name>, status:<code>
-- ARGV[1]: the delivery's idempotency key
-- ARGV[2]: the hook it was posted to
-- ARGV[3]: the status code the sink answers
-- ARGV[4]: 1 if that answer is a success (2xx), else 0
-- returns: the key's 2xx deliveries so far, this one included (0 when this answer is not
--          a success); above 1 means the delivery was a duplicate, and is counted as one
redis.call('HINCRBY', KEYS[2], 'deliveries', 1)
redis.call('HINCRBY', KEYS[2], 'hook:' .. ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], 'status:' .. ARGV[3], 1)
if ARGV[4] ~= '1' then
    return 0
end
local successes = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if successes > 1 then
    redis.call('HINCRBY', KEYS[2], 'duplicates', 1)
end
return successes
