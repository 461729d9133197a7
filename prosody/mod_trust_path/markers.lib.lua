-- Internal markers (<pending xmlns='urn:xmpp:trust-path:internal:0'/>): what this server knew
-- when a message reached it (its <in/> view, the key it vouches for, the arrival time), carried
-- in the stanza until the message leaves, so that it survives cloning (carbons) and storage
-- (offline, archives).  Every marker is removed before a stanza leaves for a client or a server,
-- and every stanza that enters from anywhere but this server's own hooks loses its markers
-- (mod_trust_path.lua).  Beyond that, a marker is honoured only on the message it was made for:
-- its token is a MAC, under a secret of this server, of the marker's attributes and the
-- message's 'from', 'to' and 'id'.  There is no server-wide token: a marker that leaks (a bug,
-- a module that copies stanzas) cannot be replayed onto any other message.
local cache = require "util.cache";
local hashes = require "util.hashes";
local base64 = require "util.encodings".base64;

return function (tp)
	local core, marker_key = tp.core, tp.keys.marker_key;
	local NS_INTERNAL = tp.NS_INTERNAL;
	local hmac_sha256 = hashes.hmac_sha256;

	-- What a token covers, in this order: the message's identity, then each attribute the
	-- marker is read from (present as name=value, absent as the name alone; XML attributes hold
	-- no NUL, so the NUL-separated list is unambiguous).  'presigned-for' and 'presigned-sig' are
	-- set later, on this server's own copy in memory (delivery.lib.lua), and are not covered.
	-- A token is computed anew at every check (before archiving, in every copy delivered): in
	-- Prosody 0.12 HMAC-SHA256 costs about 1.3 µs, while keeping recent tokens in a util.cache
	-- cost 10 to 14 µs per new marker once the cache was full (its eviction churns the table:
	-- measured in Lua 5.4.4), more than all the checks it saved.
	-- The input is one concatenation expression (one allocation); an attribute is written as
	-- name=value, or as its name alone when absent.
	local function covered(attr, name)
		local value = attr[name];
		if value then return "=", value; end
		return "", "";
	end
	local function token_for(message, attr)
		local m = message.attr;
		local eq1, v1 = covered(attr, "arrived");
		local eq2, v2 = covered(attr, "in");
		local eq3, v3 = covered(attr, "chain");
		local eq4, v4 = covered(attr, "chain-reason");
		local eq5, v5 = covered(attr, "vouch");
		local eq6, v6 = covered(attr, "removed");
		local eq7, v7 = covered(attr, "prev-sig");
		local input = "urn:xmpp:trust-path:internal:0 token\0" .. (m.from or "") .. "\0" .. (m.to or "") .. "\0"
			.. (m.id or "") .. "\0arrived" .. eq1 .. v1 .. "\0in" .. eq2 .. v2 .. "\0chain" .. eq3 .. v3
			.. "\0chain-reason" .. eq4 .. v4 .. "\0vouch" .. eq5 .. v5 .. "\0removed" .. eq6 .. v6 .. "\0prev-sig" .. eq7 .. v7;
		return base64.encode(hmac_sha256(marker_key, input));
	end

	-- Is `child` (a child element of `message`) a marker this server made for `message`?
	local function is_own_marker(child, message)
		return child.name == "pending" and child.attr.xmlns == NS_INTERNAL and child.attr.token ~= nil
			and child.attr.token == token_for(message, child.attr);
	end

	local function has_marker(stanza)
		local tags = stanza.tags;
		for i = 1, #tags do
			local child = tags[i];
			if child.attr.xmlns == NS_INTERNAL then return true; end
			if child.tags[1] and has_marker(child) then return true; end
		end
		return false;
	end

	-- Remove the child element `child` from `parent`.
	local function remove_child(parent, child)
		for i = #parent, 1, -1 do if parent[i] == child then table.remove(parent, i); break; end end
		local tags = parent.tags;
		for i = #tags, 1, -1 do if tags[i] == child then table.remove(tags, i); break; end end
	end

	-- Remove every internal marker from `stanza` and its descendants; return the last valid one
	-- among its own children (a marker deeper down belongs to another message: it goes too).
	local function remove_markers(stanza)
		local found;
		local tags = stanza.tags;
		local i = 1;
		while i <= #tags do
			local child = tags[i];
			if child.attr.xmlns == NS_INTERNAL then
				if is_own_marker(child, stanza) then found = child; end
				remove_child(stanza, child);
			else
				if child.tags[1] and has_marker(child) then remove_markers(child); end
				i = i + 1;
			end
		end
		return found;
	end
	local function take_markers(stanza)
		if not has_marker(stanza) then return nil; end -- the usual case: look, but change nothing
		return remove_markers(stanza);
	end

	-- A marker remembers what this server knew when the message reached it, for the record it
	-- signs when the message leaves: its in-view (as a record writes it), what arrived (chain,
	-- chain-reason, the key source it vouches with, the records it removed), the last record's
	-- signature then (so that it does not vouch for a path changed since) and the arrival time.
	-- It is one element of short attributes: it is stored with the message (offline storage,
	-- archives), and that storage serializes every element and attribute.
	local decoded_views = cache.new(256);
	local function decode_view(text)
		local view = decoded_views:get(text);
		if view then return view; end
		local ok, decoded = pcall(core.decode_view, text, "in");
		if not ok then return nil; end
		decoded_views:set(text, decoded);
		return decoded;
	end

	-- A marker for `message` (which it is then added to): `arrival` = { in_view, chain,
	-- chain_reason, vouch, removed, prev_sig }, `arrived` the time it arrived; or { refusal =
	-- true } for this server's own refusal, which nothing brought here (no in-view, no chain).
	local function make_marker(message, arrival, arrived)
		local attr = { xmlns = NS_INTERNAL, arrived = ("%d"):format(arrived),
			["in"] = not arrival.refusal and core.view_text(arrival.in_view) or nil, chain = arrival.chain,
			["chain-reason"] = arrival.chain_reason,
			vouch = arrival.vouch, removed = arrival.removed and arrival.removed > 0 and ("%d"):format(arrival.removed) or nil,
			["prev-sig"] = arrival.prev_sig };
		attr.token = token_for(message, attr);
		return core.element("pending", attr);
	end

	local function read_marker(marker)
		local attr = marker.attr;
		if attr["in"] == nil and attr.chain == nil then
			-- this server's refusal: its record states no in-view, chain, vouch, removed or stored
			return { refusal = true, arrived = math.tointeger(tonumber(attr.arrived)) };
		end
		local in_view = attr["in"] and decode_view(attr["in"]);
		if not in_view or not core.CHAINS[attr.chain] then return nil; end
		return { in_view = in_view, chain = attr.chain, chain_reason = attr["chain-reason"], vouch = attr.vouch,
			removed = tonumber(attr.removed), prev_sig = attr["prev-sig"], arrived = math.tointeger(tonumber(attr.arrived)),
			-- set when the record for the first resource was signed before archiving
			presigned_for = attr["presigned-for"], presigned_sig = attr["presigned-sig"] };
	end

	-- Replace `old` (a child element of `parent`) by `new`.
	local function replace_child(parent, old, new)
		for i = 1, #parent do if parent[i] == old then parent[i] = new; break; end end
		local tags = parent.tags;
		for i = 1, #tags do if tags[i] == old then tags[i] = new; break; end end
	end

	local function direct_marker(stanza)
		local marker;
		for _, child in ipairs(stanza.tags) do
			if is_own_marker(child, stanza) then marker = child; end
		end
		return marker;
	end

	return {
		has_marker = has_marker,
		remove_child = remove_child,
		replace_child = replace_child,
		take_markers = take_markers,
		direct_marker = direct_marker,
		make_marker = make_marker,
		read_marker = read_marker,
	};
end
