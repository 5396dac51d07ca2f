#include "wal/sqlite.h"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/core_harness.h"

namespace txc::wal {
namespace {

using ::testing::HasSubstr;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sqlite_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/test.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Db> OpenDb() {
    auto db = Db::Open(path_);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(*db) : nullptr;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(SqliteTest, OpensInWalModeWithFullSync) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  auto q = db->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*(*q)->Step());
  EXPECT_EQ((*q)->ColumnText(0), "wal");
  auto sync = db->Prepare("PRAGMA synchronous");
  ASSERT_TRUE(sync.ok());
  ASSERT_TRUE(*(*sync)->Step());
  EXPECT_EQ((*sync)->ColumnInt(0), 2);  // FULL
  ASSERT_OK(db->SetSynchronousFull(false));
  (*sync)->Reset();
  ASSERT_TRUE(*(*sync)->Step());
  EXPECT_EQ((*sync)->ColumnInt(0), 1);  // NORMAL
}

// A layout stamp: none in a file from before it (the table is made), the
// number once written (again: replaced), and a row that is not an integer
// refused, naming the table, the key and the file.
TEST_F(SqliteTest, ALayoutStampIsReadBackAndAStampThatIsNotANumberRefused) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  auto none = ReadLayoutStamp(*db, "some_meta", "some_layout");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());
  ASSERT_OK(WriteLayoutStamp(*db, "some_meta", "some_layout", 3));
  ASSERT_OK(WriteLayoutStamp(*db, "some_meta", "some_layout", 4));
  ASSERT_OK(WriteLayoutStamp(*db, "some_meta", "other_layout", 9));
  auto four = ReadLayoutStamp(*db, "some_meta", "some_layout");
  ASSERT_TRUE(four.ok()) << four.status().ToString();
  EXPECT_EQ(*four, std::optional<int64_t>(4));
  ASSERT_OK(db->Exec("UPDATE some_meta SET value = '4x' WHERE key = 'some_layout'"));
  auto damaged = ReadLayoutStamp(*db, "some_meta", "some_layout");
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), Status::kInvalidArgument);
  EXPECT_THAT(damaged.status().message(),
              HasSubstr("some_meta's some_layout in " + path_ + " is not a layout number"));
  auto other = ReadLayoutStamp(*db, "some_meta", "other_layout");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, std::optional<int64_t>(9));
}

TEST_F(SqliteTest, BindsStepsAndReadsBackEveryType) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  ASSERT_OK(db->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, i INTEGER, d REAL, s TEXT, b BLOB)"));
  auto ins = db->Prepare("INSERT INTO t(id, i, d, s, b) VALUES(?1, ?2, ?3, ?4, ?5)");
  ASSERT_TRUE(ins.ok()) << ins.status().ToString();
  Stmt& s = **ins;
  ASSERT_OK(s.BindInt(1, 1));
  ASSERT_OK(s.BindInt(2, -42));
  ASSERT_OK(s.BindDouble(3, 2.5));
  ASSERT_OK(s.BindText(4, "hello"));
  ASSERT_OK(s.BindBlob(5, std::string("a\0b", 3)));
  ASSERT_OK(s.Run());
  EXPECT_EQ(db->changes(), 1);
  EXPECT_EQ(db->last_insert_rowid(), 1);
  // Reuse: Reset clears the bindings, so unbound parameters are NULL.
  s.Reset();
  ASSERT_OK(s.BindInt(1, 2));
  ASSERT_OK(s.BindNull(2));
  ASSERT_OK(s.Run());

  auto sel = db->Prepare("SELECT id, i, d, s, b FROM t ORDER BY id");
  ASSERT_TRUE(sel.ok());
  Stmt& q = **sel;
  EXPECT_EQ(q.column_count(), 5);
  EXPECT_EQ(q.column_name(3), "s");
  auto row = q.Step();
  ASSERT_TRUE(row.ok());
  ASSERT_TRUE(*row);
  EXPECT_EQ(q.column_type(1), SQLITE_INTEGER);
  EXPECT_EQ(q.ColumnInt(1), -42);
  EXPECT_DOUBLE_EQ(q.ColumnDouble(2), 2.5);
  EXPECT_EQ(q.ColumnText(3), "hello");
  EXPECT_EQ(q.ColumnBlob(4), std::string("a\0b", 3));
  row = q.Step();
  ASSERT_TRUE(row.ok());
  ASSERT_TRUE(*row);
  EXPECT_EQ(q.ColumnInt(0), 2);
  EXPECT_TRUE(q.ColumnIsNull(1));
  EXPECT_TRUE(q.ColumnIsNull(3));
  row = q.Step();
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(*row);
}

// BindBlobNoCopy: SQLite reads the caller's bytes during the step (no copy
// at bind); the row holds them after the caller's buffer changes, and an
// empty value is a zero-length blob, as with BindBlob.
TEST_F(SqliteTest, BlobBoundWithoutCopyIsWrittenAtTheStep) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  ASSERT_OK(db->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)"));
  auto ins = db->Prepare("INSERT INTO t(id, b) VALUES(?1, ?2)");
  ASSERT_TRUE(ins.ok());
  Stmt& s = **ins;
  std::string image(1 << 20, 'x');
  image[12345] = '\0';
  ASSERT_OK(s.BindInt(1, 1));
  ASSERT_OK(s.BindBlobNoCopy(2, image));
  image[0] = 'y';  // before the step: the row gets this byte
  ASSERT_OK(s.Run());
  s.Reset();
  const std::string written = image;
  image.assign(image.size(), 'z');  // after the step and Reset: the row keeps its bytes
  ASSERT_OK(s.BindInt(1, 2));
  ASSERT_OK(s.BindBlobNoCopy(2, ""));
  ASSERT_OK(s.Run());
  s.Reset();

  auto sel = db->Prepare("SELECT b, typeof(b) FROM t ORDER BY id");
  ASSERT_TRUE(sel.ok());
  Stmt& q = **sel;
  auto row = q.Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(q.ColumnBlob(0), written);
  row = q.Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(q.ColumnBlob(0), "");
  EXPECT_EQ(q.ColumnText(1), "blob");
}

// WriteBlob fills a zero-filled row in place, a chunk at a time; a row of
// another size, or no row, is an error that names the row, and writes nothing.
TEST_F(SqliteTest, WriteBlobFillsAZeroFilledRow) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  ASSERT_OK(db->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB NOT NULL)"));
  std::string data((2u << 20) + 77, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + (i >> 16));
  ASSERT_OK(db->Exec("INSERT INTO t(id, b) VALUES(5, zeroblob(" + std::to_string(data.size()) +
                     ")), (6, zeroblob(10))"));
  ASSERT_OK(db->WriteBlob("t", "b", 5, data));

  Status wrong = db->WriteBlob("t", "b", 6, data);
  EXPECT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.message(), ::testing::HasSubstr("row 6"));
  EXPECT_THAT(wrong.message(), ::testing::HasSubstr("holds 10 bytes"));
  Status missing = db->WriteBlob("t", "b", 99, data);
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.message(), ::testing::HasSubstr("row 99"));

  auto sel = db->Prepare("SELECT b FROM t ORDER BY id");
  ASSERT_TRUE(sel.ok());
  Stmt& q = **sel;
  auto row = q.Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_TRUE(q.ColumnBlob(0) == data);
  row = q.Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(q.ColumnBlob(0), std::string(10, '\0'));
}

TEST_F(SqliteTest, DataSurvivesReopen) {
  {
    auto db = OpenDb();
    ASSERT_NE(db, nullptr);
    ASSERT_OK(db->Exec("CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES('a','1')"));
  }
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  auto q = db->Prepare("SELECT v FROM kv WHERE k = 'a'");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*(*q)->Step());
  EXPECT_EQ((*q)->ColumnText(0), "1");
}

TEST_F(SqliteTest, PrepareErrorNamesFileAndSqliteMessage) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  auto bad = db->Prepare("SELECT * FROM acounts");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::kSqlError);
  EXPECT_THAT(bad.status().message(), HasSubstr(path_));
  EXPECT_THAT(bad.status().message(), HasSubstr("no such table: acounts"));
}

TEST_F(SqliteTest, ExecErrorNamesFileAndSqliteMessage) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  Status s = db->Exec("CREATE TABLE t(x); CREATE TABLE t(x)");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(path_));
  EXPECT_THAT(s.message(), HasSubstr("table t already exists"));
}

TEST_F(SqliteTest, StepErrorCarriesConstraintMessage) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  ASSERT_OK(db->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES(1)"));
  auto ins = db->Prepare("INSERT INTO t VALUES(?1)");
  ASSERT_TRUE(ins.ok());
  ASSERT_OK((*ins)->BindInt(1, 1));
  Status s = (*ins)->Run();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::kSqlError);
  EXPECT_THAT(s.message(), HasSubstr(path_));
  EXPECT_THAT(s.message(), HasSubstr("UNIQUE constraint failed: t.id"));
  Status e = db->Error("after insert");
  EXPECT_FALSE(e.ok());
  EXPECT_THAT(e.message(), HasSubstr("after insert"));
}

TEST_F(SqliteTest, BindOutOfRangeIsAnError) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  auto q = db->Prepare("SELECT ?1");
  ASSERT_TRUE(q.ok());
  Status s = (*q)->BindInt(5, 1);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("bind parameter 5"));
}

TEST_F(SqliteTest, PrepareRefusesEmptyAndMultipleStatements) {
  auto db = OpenDb();
  ASSERT_NE(db, nullptr);
  auto empty = db->Prepare("  -- nothing\n");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), Status::kInvalidArgument);
  auto two = db->Prepare("SELECT 1; SELECT 2");
  ASSERT_FALSE(two.ok());
  EXPECT_THAT(two.status().message(), HasSubstr("more than one statement"));
  auto one = db->Prepare("SELECT 1;  ");
  EXPECT_TRUE(one.ok()) << one.status().ToString();
}

TEST_F(SqliteTest, OpenFailureNamesThePath) {
  auto db = Db::Open(dir_ + "/no/such/dir/x.db");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Status::kStorageFailed);
  EXPECT_THAT(db.status().message(), HasSubstr(dir_ + "/no/such/dir/x.db"));
}

TEST_F(SqliteTest, MemoryDatabaseWorks) {
  auto db = Db::Open(":memory:");
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_OK((*db)->Exec("CREATE TABLE t(x); INSERT INTO t VALUES(1)"));
  EXPECT_EQ((*db)->changes(), 1);
}

}  // namespace
}  // namespace txc::wal
