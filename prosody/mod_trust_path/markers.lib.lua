-- Internal markers (<pending xmlns='urn:xmpp:trust-path:internal:0'/>): what this server knew
-- when a message reached it (its <in/> view, the key it vouches for, the arrival time), carried
-- in the stanza until the message leaves, so that it survives cloning (carbons) and storage
-- (offline, archives).  A marker carries a token derived from a secret of this server, so a
-- marker it did not make is ignored; every marker is removed before a stanza leaves for a
-- client or a server.
local cache = require "util.cache";

return function (tp)
	local core, marker_token = tp.core, tp.keys.marker_token;
	local NS_INTERNAL = tp.NS_INTERNAL;

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
				if child.name == "pending" and child.attr.token == marker_token then found = child; end
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

	-- A marker remembers what this server knew when the message reached it, for the signature
	-- it adds when the message leaves: its <in/> view, the key it vouches for and when it came.
	-- It is one element, and the view one attribute ("name=value ...", values %-escaped): it
	-- is stored with the message (offline storage, archives), and that storage serializes every
	-- element and attribute.
	local function escape_value(v)
		v = tostring(v);
		if not v:find("[%%%s]") then return v; end
		return (v:gsub("[%%%s]", function (c) return ("%%%02X"):format(c:byte()); end));
	end
	local view_codes = setmetatable({}, { __mode = "k" });
	local function encode_view(view)
		local code = view_codes[view];
		if code then return code; end
		local parts = {};
		for k, v in pairs(view) do parts[#parts + 1] = k .. "=" .. escape_value(v); end
		table.sort(parts);
		code = table.concat(parts, " ");
		view_codes[view] = code;
		return code;
	end
	local decoded_views = cache.new(256);
	local function decode_view(code)
		local view = decoded_views:get(code);
		if view then return view; end
		view = {};
		for k, v in code:gmatch("([^%s=]+)=(%S*)") do
			if v:find("%", 1, true) then v = v:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)); end); end
			view[k] = v;
		end
		if not view.chain then return nil; end
		decoded_views:set(code, core.reuse_view(view));
		view_codes[view] = code;
		return view;
	end

	local function make_marker(in_view, prev_key, prev_sig, arrived)
		return core.element("pending", { xmlns = NS_INTERNAL, token = marker_token, arrived = core.format_time(arrived),
			["prev-key"] = prev_key, ["prev-sig"] = prev_sig, ["in"] = encode_view(in_view) });
	end

	local function read_marker(marker)
		local attr = marker.attr;
		local in_view = attr["in"] and decode_view(attr["in"]);
		if not in_view then return nil; end
		return { in_view = in_view, prev_key = attr["prev-key"], prev_sig = attr["prev-sig"],
			arrived = core.parse_time(attr.arrived),
			-- set when the delivery attestation for the first resource was signed before archiving
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
			if child.name == "pending" and child.attr.xmlns == NS_INTERNAL and child.attr.token == marker_token then
				marker = child;
			end
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
