#include "participant/sql_text.h"

#include <cctype>

namespace txc::participant {

namespace {

bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// If sql[i] starts a dollar-quote tag ($$ or $tag$), its length; else 0.
size_t DollarTag(std::string_view sql, size_t i) {
  if (sql[i] != '$') return 0;
  if (i > 0 && IsIdentChar(sql[i - 1])) return 0;  // part of an identifier like a$b
  size_t j = i + 1;
  if (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) return 0;  // $1
  while (j < sql.size() && IsIdentChar(sql[j])) ++j;
  if (j < sql.size() && sql[j] == '$') return j - i + 1;
  return 0;
}

}  // namespace

std::string NumberPlaceholders(std::string_view sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 8);
  int n = 0;
  bool has_numbered = false;
  size_t i = 0;
  while (i < sql.size()) {
    char c = sql[i];
    if (c == '\'' ) {
      bool backslash = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                       (i < 2 || !IsIdentChar(sql[i - 2]));
      size_t j = i + 1;
      while (j < sql.size()) {
        if (backslash && sql[j] == '\\') {
          j += 2;
          continue;
        }
        if (sql[j] == '\'') {
          if (j + 1 < sql.size() && sql[j + 1] == '\'') {
            j += 2;
            continue;
          }
          break;
        }
        ++j;
      }
      j = j < sql.size() ? j + 1 : j;
      out.append(sql.substr(i, j - i));
      i = j;
    } else if (c == '"') {
      size_t j = sql.find('"', i + 1);
      j = j == std::string_view::npos ? sql.size() : j + 1;
      out.append(sql.substr(i, j - i));
      i = j;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      size_t j = sql.find('\n', i);
      j = j == std::string_view::npos ? sql.size() : j;
      out.append(sql.substr(i, j - i));
      i = j;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      int depth = 0;
      size_t j = i;
      while (j < sql.size()) {
        if (j + 1 < sql.size() && sql[j] == '/' && sql[j + 1] == '*') {
          ++depth;
          j += 2;
        } else if (j + 1 < sql.size() && sql[j] == '*' && sql[j + 1] == '/') {
          j += 2;
          if (--depth == 0) break;
        } else {
          ++j;
        }
      }
      out.append(sql.substr(i, j - i));
      i = j;
    } else if (size_t tag = DollarTag(sql, i); tag > 0) {
      std::string_view t = sql.substr(i, tag);
      size_t end = sql.find(t, i + tag);
      size_t j = end == std::string_view::npos ? sql.size() : end + tag;
      out.append(sql.substr(i, j - i));
      i = j;
    } else if (c == '$' && i + 1 < sql.size() && std::isdigit(static_cast<unsigned char>(sql[i + 1])) &&
               (i == 0 || !IsIdentChar(sql[i - 1]))) {
      has_numbered = true;
      out += c;
      ++i;
    } else if (c == '?') {
      out += '$';
      out += std::to_string(++n);
      ++i;
    } else {
      out += c;
      ++i;
    }
  }
  if (has_numbered) {
    if (count != nullptr) *count = -1;
    return std::string(sql);
  }
  if (count != nullptr) *count = n;
  return out;
}

}  // namespace txc::participant
