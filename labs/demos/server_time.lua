-- Read the server's clock: the one clock every lab script trusts.
-- KEYS: none
-- ARGV: none
-- returns {seconds, microseconds} from Redis TIME
return redis.call('TIME')
