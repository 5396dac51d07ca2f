#include "participant/sql_text.h"

#include <gtest/gtest.h>

namespace txc::participant {
namespace {

TEST(SqlTextTest, NumbersQuestionMarksInOrder) {
  int n = 0;
  EXPECT_EQ(NumberPlaceholders("UPDATE a SET b = b - ? WHERE id = ? AND b >= ?", &n),
            "UPDATE a SET b = b - $1 WHERE id = $2 AND b >= $3");
  EXPECT_EQ(n, 3);
  EXPECT_EQ(NumberPlaceholders("SELECT 1", &n), "SELECT 1");
  EXPECT_EQ(n, 0);
}

TEST(SqlTextTest, LeavesQuotesIdentifiersAndCommentsAlone) {
  EXPECT_EQ(NumberPlaceholders("SELECT '?', 'it''s ?', \"q?\" FROM t WHERE x = ?"),
            "SELECT '?', 'it''s ?', \"q?\" FROM t WHERE x = $1");
  EXPECT_EQ(NumberPlaceholders("SELECT E'\\' ?' , ? -- what?\n, ?"), "SELECT E'\\' ?' , $1 -- what?\n, $2");
  EXPECT_EQ(NumberPlaceholders("SELECT /* a /* nested ? */ still ? */ ?"),
            "SELECT /* a /* nested ? */ still ? */ $1");
  EXPECT_EQ(NumberPlaceholders("SELECT $$ ? $$, $tag$ ? $tag$, ?"), "SELECT $$ ? $$, $tag$ ? $tag$, $1");
}

TEST(SqlTextTest, NumberedStatementsAreLeftAsWritten) {
  int n = 0;
  // $n already: PostgreSQL's own style, ? may be a jsonb operator.
  EXPECT_EQ(NumberPlaceholders("SELECT doc ? 'k' FROM t WHERE id = $1", &n),
            "SELECT doc ? 'k' FROM t WHERE id = $1");
  EXPECT_EQ(n, -1);
  // A $ inside an identifier is not a parameter.
  EXPECT_EQ(NumberPlaceholders("SELECT a$1 FROM t WHERE x = ?", &n), "SELECT a$1 FROM t WHERE x = $1");
  EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace txc::participant
