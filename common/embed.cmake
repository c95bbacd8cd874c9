# What the build-time scripts that embed files in C sources share
# (gateway/embed.cmake, bridge/history_embed.cmake). Include it from a
# script run with `cmake -P`.

# embed_bytes(<var> <file>): the bytes of <file> as a C initialiser,
# "0x..," 16 a line; empty when <file> does not exist.
function(embed_bytes var file)
	set(hex "")
	if(EXISTS "${file}")
		file(READ "${file}" hex HEX)
	endif()
	string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
	# Keep lines short for compilers and diffs.
	string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
	set(${var} "${bytes}" PARENT_SCOPE)
endfunction()

# embed_write(<out> <src>): writes src to out only when it changed, so
# that dependents are not rebuilt needlessly.
function(embed_write out src)
	if(EXISTS "${out}")
		file(READ "${out}" old)
		if(old STREQUAL src)
			return()
		endif()
	endif()
	file(WRITE "${out}" "${src}")
endfunction()
