-- GCRA quotas for the gateway, in one round trip (docs/contract.md §2).
--
-- This script mirrors gateway/core/quota.py (evaluate, release_value,
-- extend_cooldown) line for line; read the docstrings there for the why.
-- Times are integer microseconds from Redis's own TIME, so the clocks of the
-- gateway replicas never matter. Each key holds one number, as a decimal
-- string, with an expiry at the moment it stops mattering.
--
-- ARGV[1] names the operation:
--   acquire   KEYS = {cool-down key, policy key...}
--             ARGV = {'acquire', 'n then per policy:
--                     interval_us burst reject(0/1) max_delay_us shadow(0/1)'}
--             -> 'allowed wait_or_retry_us decider(-1 none, 0 cool-down, i policy)
--                 now_us then per policy: verdict(0 allowed, 1 delayed, 2 rejected)
--                 charged(0/1) stored_us tat_us'
--             Numbers travel as one space-separated string each way: one
--             bulk string parses far faster in the client than a long array.
--             A refused call writes nothing. All the keys of a call share a
--             hash tag, so this works on Redis Cluster too.
--   release   KEYS = {key...}; ARGV = {'release', then per key: expected_us, previous_us}
--             Gives a reservation back only where it is still the last one.
--             -> the number of keys given back
--   cooldown  KEYS = {cool-down key}; ARGV = {'cooldown', seconds_us}
--             -> {now_us, until_us}
--   check     KEYS = {cool-down key}; ARGV = {'check'}
--             -> the microseconds left of the cool-down (0: none)
--   seed      KEYS = {key}; ARGV = {'seed', backlog_us}
--             Raises the key to now + backlog_us (never lowers it): a replica
--             hands back what it reserved in memory while Redis was away.
--             -> 1 if raised, else 0

if redis.replicate_commands then
  redis.replicate_commands() -- Redis < 5: TIME before a write needs effects replication
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function stored(key)
  local v = redis.call('GET', key)
  if v then
    return tonumber(v)
  end
  return 0
end

local function put(key, value)
  redis.call('SET', key, string.format('%.0f', value), 'PX', math.ceil((value - now) / 1000))
end

local op = ARGV[1]

if op == 'cooldown' then
  local untl = math.max(stored(KEYS[1]), now + tonumber(ARGV[2]))
  if untl > now then
    put(KEYS[1], untl)
  end
  return {now, untl}
end

if op == 'check' then
  return math.max(0, stored(KEYS[1]) - now)
end

if op == 'release' then
  local given = 0
  for i = 1, #KEYS do
    if redis.call('GET', KEYS[i]) == ARGV[2 * i] then
      local previous = tonumber(ARGV[2 * i + 1])
      if previous > now then
        put(KEYS[i], previous)
      else
        redis.call('DEL', KEYS[i])
      end
      given = given + 1
    end
  end
  return given
end

if op == 'seed' then
  local value = now + tonumber(ARGV[2])
  if value > now and value > stored(KEYS[1]) then
    put(KEYS[1], value)
    return 1
  end
  return 0
end

if op ~= 'acquire' then
  return redis.error_reply('gcra.lua: unknown operation')
end

local arg = {}
for v in string.gmatch(ARGV[2], '%S+') do
  arg[#arg + 1] = tonumber(v)
end
local n = arg[1]
local cooldown = stored(KEYS[1])
local send = math.max(now, cooldown)
local iv, burst, reject, max_delay, shadow, st, tat, at = {}, {}, {}, {}, {}, {}, {}, {}
local enforced, any_reject = 0, false
for i = 1, n do
  local a = 2 + (i - 1) * 5
  iv[i] = arg[a]
  burst[i] = arg[a + 1]
  reject[i] = arg[a + 2] == 1
  max_delay[i] = arg[a + 3]
  shadow[i] = arg[a + 4] == 1
  st[i] = stored(KEYS[i + 1])
  tat[i] = math.max(st[i], now)
  at[i] = tat[i] - (burst[i] - 1) * iv[i]
  if not shadow[i] then
    enforced = enforced + 1
    any_reject = any_reject or reject[i]
    send = math.max(send, at[i])
  end
end
local wait = send - now

local decider, retry = -1, 0
if cooldown > now and (enforced == 0 or any_reject) then
  decider, retry = 0, cooldown - now
end
local refused = {}
for i = 1, n do
  refused[i] = false
  if not shadow[i] then
    local over
    if reject[i] then
      over = at[i] - now
    else
      over = wait - max_delay[i]
    end
    if over > 0 then
      if not reject[i] and cooldown - now > max_delay[i] then
        refused[i] = at[i] - now > max_delay[i]
        if decider < 0 then
          decider = 0
        end
      else
        refused[i] = true
        if decider < 0 then
          decider = i
        end
      end
      retry = math.max(retry, over)
    end
  end
end

local allowed = decider < 0
local out = {0, retry, decider, now}
if allowed then
  out[1], out[2] = 1, wait
end
for i = 1, n do
  local own = at[i] - now
  local verdict, charge
  if shadow[i] then
    local refuse
    if reject[i] then
      refuse = own > 0
    else
      refuse = own > max_delay[i]
    end
    if refuse then
      verdict = 2
    elseif own > 0 then
      verdict = 1
    else
      verdict = 0
    end
    charge = allowed and not refuse
  else
    if refused[i] then
      verdict = 2
    elseif own > 0 or (allowed and wait > 0) then
      verdict = 1
    else
      verdict = 0
    end
    charge = allowed
  end
  local after = tat[i]
  local charged = 0
  if charge then
    after = math.max(tat[i], send) + iv[i]
    put(KEYS[i + 1], after)
    charged = 1
  end
  out[#out + 1] = verdict
  out[#out + 1] = charged
  out[#out + 1] = st[i]
  out[#out + 1] = after
end
for i = 1, #out do
  out[i] = string.format('%.0f', out[i])
end
return table.concat(out, ' ')
