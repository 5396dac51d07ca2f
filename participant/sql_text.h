// Statement text helpers for database resources.
#pragma once

#include <string>
#include <string_view>

namespace txc::participant {

// PostgreSQL numbers its parameters ($1, $2, ...); txcoord statements mark
// them with `?` on every kind. Returns `sql` with each `?` outside string
// literals ('...', E'...' with backslash escapes, $tag$...$tag$), quoted
// identifiers ("...") and comments (-- and nested /* */) replaced by $1, $2,
// ... in order. A statement that already uses $n outside those is returned
// as it is (so are PostgreSQL's `?` operators there: use $n with them).
// `*count` (optional) receives the number of parameters found.
std::string NumberPlaceholders(std::string_view sql, int* count = nullptr);

}  // namespace txc::participant
