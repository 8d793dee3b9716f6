#include "proto/json_writer.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "simdjson.h"

namespace mailring::proto {
namespace {

TEST(JsonWriterTest, NestedObjectsAndArraysGetTheirCommas) {
  JsonWriter json;
  json.BeginObject().StringField("kind", "Service").Key("spec").BeginObject();
  json.Key("ports").BeginArray();
  json.BeginObject().StringField("name", "imap").IntField("port", 143).EndObject();
  json.BeginObject().StringField("name", "imaps").IntField("port", 993).EndObject();
  json.EndArray().BoolField("local", true).Key("selector").Null();
  json.EndObject().Key("empty").BeginArray().EndArray().EndObject();
  EXPECT_EQ(std::move(json).Take(),
            R"({"kind":"Service","spec":{"ports":[{"name":"imap","port":143},)"
            R"({"name":"imaps","port":993}],"local":true,"selector":null},"empty":[]})");
}

TEST(JsonWriterTest, TopLevelArrayOfScalars) {
  JsonWriter json;
  json.BeginArray().String("a").Int(-7).Bool(false).Null().EndArray();
  EXPECT_EQ(json.text(), R"(["a",-7,false,null])");
}

TEST(JsonWriterTest, StringArrayField) {
  JsonWriter json;
  json.BeginObject().StringArrayField("finalizers", {"a/b", "c\"d"}).EndObject();
  EXPECT_EQ(json.text(), R"({"finalizers":["a/b","c\"d"]})");
  JsonWriter none;
  none.BeginObject().StringArrayField("finalizers", {}).EndObject();
  EXPECT_EQ(none.text(), R"({"finalizers":[]})");
}

TEST(JsonWriterTest, QuotesAndBackslashesAreEscapedInKeysAndValues) {
  JsonWriter json;
  json.BeginObject().StringField("a\"b", R"(say "hi" \ bye)").EndObject();
  EXPECT_EQ(json.text(), R"({"a\"b":"say \"hi\" \\ bye"})");
}

TEST(JsonWriterTest, ControlCharactersAreEscaped) {
  JsonWriter json;
  json.BeginArray().String(std::string("\n\r\t\x01\x1f", 5)).String(std::string(1, '\0'));
  json.EndArray();
  EXPECT_EQ(json.text(), R"(["\n\r\t\u0001\u001f","\u0000"])");
}

TEST(JsonWriterTest, NonAsciiPassesThrough) {
  JsonWriter json;
  json.BeginObject().StringField("message", "Zürich – 東京 ✓").EndObject();
  EXPECT_EQ(json.text(), "{\"message\":\"Zürich – 東京 ✓\"}");
}

// Whatever goes in comes back out of a real JSON parser unchanged.
TEST(JsonWriterTest, OutputParsesBackToTheInput) {
  std::string every_byte;
  for (int c = 1; c < 0x80; ++c) every_byte += static_cast<char>(c);
  every_byte += "ü";
  JsonWriter json;
  json.BeginObject().StringField(every_byte, every_byte).IntField("n", INT64_MIN).EndObject();
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  ASSERT_EQ(parser.parse(json.text()).get(object), simdjson::SUCCESS) << json.text();
  std::string_view value;
  ASSERT_EQ(object[every_byte].get_string().get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, every_byte);
  int64_t n = 0;
  ASSERT_EQ(object["n"].get_int64().get(n), simdjson::SUCCESS);
  EXPECT_EQ(n, INT64_MIN);
}

}  // namespace
}  // namespace mailring::proto
