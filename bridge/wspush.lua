#!lua name=wspush
--[==[
wspush.lua - the Redis function library "wspush" (Redis 7.0+).

The bridge loads it with FUNCTION LOAD REPLACE at start and after every
reconnect (a Redis without persistence forgets functions on restart). The
line marked CONF below is rewritten by the bridge from its [history]
section before loading; as shipped it holds the defaults, so this file also
loads as it is (tests do that).

  FCALL wspush_publish 1 <prefix>:<address> <payload> [<from> [json]]
      Appends the message to the stream named like the channel (capped near
      the configured size, expiring after the ttl), publishes it on that
      channel as a wspush envelope carrying its id and ts, returns the id.
      <from> "" means no sender. A payload that is itself a wspush envelope
      ("\xC1WSP" + msgpack map) is unwrapped: its data, from and json are
      used (an explicit <from> argument wins).
  FCALL_RO wspush_range 1 <key> <since> <count>
      Facts for a recovery or a history read, read atomically:
      { exists, first_id, length, entries_added, entries }.
      since "0": from the first entry; since "" : the last <count> entries
      (oldest first); otherwise the entries after <since> (exclusive), at
      most <count>. entries has the XRANGE shape. The caller decides
      "recovered" from the facts.
  FCALL_RO wspush_config 0
      { version, size, ttl_s, user_size, user_ttl_s, sharded }: what this
      library was loaded with, so that a bridge can see that another node
      sharing the Redis runs with other [history] values.

Stream entries have the fields data, and optionally from and json ("1":
data is JSON text to embed as is).

Envelopes are msgpack written and read by hand below. Redis' cmsgpack
packs a Lua string as a msgpack str, which the msgpack spec says is UTF-8:
strict decoders in other languages (Python's msgpack with raw=False, the JS
msgpack libraries) refuse a binary payload in a str, and the contract says
data is bin, so it is bin. cmsgpack.unpack cannot read bin at all ("Bad
data format"), so the envelope reader is hand-written too.
]==]

local CONF = {version = 1, size = 1000, ttl_s = 300, user_size = 1000, user_ttl_s = 86400, sharded = false} -- CONF

local MAGIC = '\193WSP'

local function be32(n)
  return struct.pack('>I4', n)
end

local function mp_str(s)
  local n = #s
  if n < 32 then
    return string.char(0xa0 + n) .. s
  elseif n < 256 then
    return '\217' .. string.char(n) .. s
  elseif n < 65536 then
    return '\218' .. struct.pack('>I2', n) .. s
  end
  return '\219' .. be32(n) .. s
end

local function mp_bin(s)
  local n = #s
  if n < 256 then
    return '\196' .. string.char(n) .. s
  elseif n < 65536 then
    return '\197' .. struct.pack('>I2', n) .. s
  end
  return '\198' .. be32(n) .. s
end

-- uint 64 from a double below 2^53 (ms timestamps are).
local function mp_u64(v)
  local hi = math.floor(v / 4294967296)
  return '\207' .. be32(hi) .. be32(v - hi * 4294967296)
end

-- The address part of "<prefix>:<address>" and whether it is a user's, or
-- nil: the function must not write any other key of the prefix (inbound,
-- events, presence ...).
local function parse_key(key)
  local c = string.find(key, ':', 1, true)
  if c == nil or c == 1 then
    return nil
  end
  local addr = string.sub(key, c + 1)
  local id, user
  if addr == 'all' then
    return addr, false
  elseif string.sub(addr, 1, 5) == 'user:' then
    id, user = string.sub(addr, 6), true
  elseif string.sub(addr, 1, 8) == 'channel:' then
    id, user = string.sub(addr, 9), false
  else
    return nil
  end
  if #id < 1 or #id > 256 or string.find(id, '[%c%s%*]') then
    return nil
  end
  return addr, user
end

-- One msgpack value of the kinds an envelope uses (positive int, str, bin,
-- nil, bool) at s[pos]: value, next position; nil for anything else or
-- when s ends inside it. Redis' cmsgpack cannot read bin, hence this.
local NIL = {}
local function mp_read(s, pos)
  local b = string.byte(s, pos)
  if b == nil then
    return nil
  end
  local n, at
  if b < 0x80 then
    return b, pos + 1
  elseif b >= 0xa0 and b <= 0xbf then
    n, at = b - 0xa0, pos + 1
  elseif b == 0xc0 then
    return NIL, pos + 1
  elseif b == 0xc2 or b == 0xc3 then
    return b == 0xc3, pos + 1
  elseif b == 0xc4 or b == 0xd9 or b == 0xcc then
    if #s < pos + 1 then
      return nil
    end
    n, at = string.byte(s, pos + 1), pos + 2
  elseif b == 0xc5 or b == 0xda or b == 0xcd then
    if #s < pos + 2 then
      return nil
    end
    n, at = struct.unpack('>I2', s, pos + 1)
  elseif b == 0xc6 or b == 0xdb or b == 0xce then
    if #s < pos + 4 then
      return nil
    end
    n, at = struct.unpack('>I4', s, pos + 1)
  elseif b == 0xcf then
    if #s < pos + 8 then
      return nil
    end
    local hi, lo = struct.unpack('>I4I4', s, pos + 1)
    return hi * 4294967296 + lo, pos + 9
  else
    return nil
  end
  if b == 0xcc or b == 0xcd or b == 0xce then
    return n, at
  end
  if at + n - 1 > #s then
    return nil
  end
  return string.sub(s, at, at + n - 1), at + n
end

-- A wspush envelope given as the payload: its data, from and json, or nil
-- if it is malformed (the rules of the bridge's own decoder, for the keys
-- it knows; other keys may only hold the simple kinds above).
local function unwrap(s)
  local b, n, pos = string.byte(s, 5), nil, nil
  if b == nil then
    return nil
  elseif b >= 0x80 and b <= 0x8f then
    n, pos = b - 0x80, 6
  elseif b == 0xde and #s >= 7 then
    n, pos = struct.unpack('>I2', s, 6)
  else
    return nil
  end
  local m = {}
  for _ = 1, n do
    local k, v
    k, pos = mp_read(s, pos)
    if type(k) ~= 'string' then
      return nil
    end
    v, pos = mp_read(s, pos)
    if v == nil then
      return nil
    end
    if k == 'v' or k == 'data' or k == 'from' or k == 'json' or k == 'id' or k == 'ts' then
      if m[k] ~= nil then
        return nil
      end
      m[k] = v
    end
  end
  if pos ~= #s + 1 or m.v ~= 1 or type(m.data) ~= 'string' then
    return nil
  end
  local from = m.from
  if from == nil or from == NIL then
    from = ''
  elseif type(from) ~= 'string' then
    return nil
  end
  return m.data, from, m.json == true
end

local function publish(keys, args)
  local key, payload = keys[1], args[1]
  if #keys ~= 1 or payload == nil then
    return redis.error_reply('ERR wspush_publish: usage: FCALL wspush_publish 1 <prefix>:<address> <payload> [<from> [json]]')
  end
  local addr, user = parse_key(key)
  if addr == nil then
    return redis.error_reply('ERR wspush_publish: not a wspush address key: ' .. key)
  end
  local from, json = args[2] or '', args[3] == 'json'
  if string.sub(payload, 1, 4) == MAGIC then
    local d, f, j = unwrap(payload)
    if d == nil then
      return redis.error_reply('ERR wspush_publish: malformed wspush envelope')
    end
    payload, json = d, j or json
    if from == '' then
      from = f
    end
  end
  if #from > 256 then
    return redis.error_reply('ERR wspush_publish: from is longer than 256 bytes')
  end
  local size, ttl = CONF.size, CONF.ttl_s
  if user then
    size, ttl = CONF.user_size, CONF.user_ttl_s
  end
  local fields = {'data', payload}
  if from ~= '' then
    fields[#fields + 1] = 'from'
    fields[#fields + 1] = from
  end
  if json then
    fields[#fields + 1] = 'json'
    fields[#fields + 1] = '1'
  end
  local id = redis.call('XADD', key, 'MAXLEN', '~', size, '*', unpack(fields))
  redis.call('PEXPIRE', key, ttl * 1000)
  -- ts is the id's time part: the time Redis stamped the message with.
  local ts = tonumber(string.match(id, '^(%d+)'))
  local n = 3
  local tail = ''
  if from ~= '' then
    n = n + 1
    tail = tail .. '\164from' .. mp_str(from)
  end
  if json then
    n = n + 1
    tail = tail .. '\164json\195'
  end
  local env = MAGIC .. string.char(0x80 + n + 1) .. '\161v\1' ..
    '\164data' .. mp_bin(payload) .. '\162id' .. mp_str(id) ..
    '\162ts' .. mp_u64(ts) .. tail
  if CONF.sharded then
    redis.call('SPUBLISH', key, env)
  else
    redis.call('PUBLISH', key, env)
  end
  return id
end

local function valid_id(s)
  return string.match(s, '^%d+$') or string.match(s, '^%d+%-%d+$')
end

local function range(keys, args)
  local key, since, count = keys[1], args[1], tonumber(args[2])
  if #keys ~= 1 or since == nil or count == nil or count < 1 or count ~= math.floor(count) then
    return redis.error_reply('ERR wspush_range: usage: FCALL_RO wspush_range 1 <key> <since> <count>')
  end
  if since ~= '' and not valid_id(since) then
    return redis.error_reply('ERR wspush_range: since is not a stream id')
  end
  if redis.call('EXISTS', key) == 0 then
    return {0, '', 0, 0, {}}
  end
  local info = redis.call('XINFO', 'STREAM', key)
  local length, added, first = 0, 0, ''
  for i = 1, #info, 2 do
    local k, v = info[i], info[i + 1]
    if k == 'length' then
      length = v
    elseif k == 'entries-added' then
      added = v
    elseif k == 'first-entry' and type(v) == 'table' then
      first = v[1]
    end
  end
  local entries
  if since == '' then
    local rev = redis.call('XREVRANGE', key, '+', '-', 'COUNT', count)
    entries = {}
    for i = #rev, 1, -1 do
      entries[#entries + 1] = rev[i]
    end
  elseif since == '0' then
    entries = redis.call('XRANGE', key, '-', '+', 'COUNT', count)
  else
    entries = redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', count)
  end
  return {1, first, length, added, entries}
end

local function config()
  local sharded = 0
  if CONF.sharded then
    sharded = 1
  end
  return {CONF.version, CONF.size, CONF.ttl_s, CONF.user_size, CONF.user_ttl_s, sharded}
end

redis.register_function('wspush_publish', publish)
redis.register_function{function_name = 'wspush_range', callback = range, flags = {'no-writes'}}
redis.register_function{function_name = 'wspush_config', callback = config, flags = {'no-writes'}}
