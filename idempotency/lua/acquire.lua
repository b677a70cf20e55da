-- Take a key's lock, or report the record that holds the key (redis-lock's SET NX PX).
-- KEYS[1]: the key's record, a hash: state ('in_flight' or 'finished'), fingerprint,
--          token (the owner's, while in flight), response (JSON, once finished)
-- ARGV[1]: the caller's owner token (random, unique per request)
-- ARGV[2]: the request's fingerprint
-- ARGV[3]: the lock's TTL in milliseconds
-- returns: an empty array when the lock was taken (the record is new and the caller's);
--          else {state, fingerprint, response or '', remaining TTL in ms}
local found = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'response')
if found[1] then
    return {found[1], found[2], found[3] or '', redis.call('PTTL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'state', 'in_flight', 'fingerprint', ARGV[2], 'token', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {}
