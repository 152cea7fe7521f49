/* Python-compatible JSON formatting: float repr, ensure_ascii escapes,
 * str()/repr() of containers, truthiness. Expected strings are what
 * CPython 3.11 prints for the same values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pyjson.h"

static void check_repr(double x, const char *expected)
{
    struct strbuf sb;
    strbuf_init(&sb);
    pyjson_float_repr(x, &sb);
    assert_string_equal(sb.data, expected);
    strbuf_free(&sb);
}

static void float_repr_matches_python(void **state)
{
    (void)state;
    check_repr(0.1, "0.1");
    check_repr(1e-05, "1e-05");
    check_repr(0.0001, "0.0001");
    check_repr(1e16, "1e+16");
    check_repr(1e15, "1000000000000000.0");
    check_repr(123.456, "123.456");
    check_repr(-2.5, "-2.5");
    check_repr(-0.0, "-0.0");
    check_repr(0.0, "0.0");
    check_repr(100.0, "100.0");
    check_repr(1.0 / 3.0, "0.3333333333333333");
    check_repr(5e-324, "5e-324");
    check_repr(1.7976931348623157e308, "1.7976931348623157e+308");
    check_repr(1.5e-7, "1.5e-07");
    check_repr(123456789012345678.0, "1.2345678901234568e+17");
}

static char *dumps_text(const char *json_text)
{
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    struct strbuf sb;
    strbuf_init(&sb);
    pyjson_dumps(v, &sb);
    json_decref(v);
    return strbuf_detach(&sb) ;
}

static void dumps_matches_python(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        /* json.dumps(x, sort_keys=True, separators=(",", ":")) */
        {"{\"b\": 1, \"a\": [true, false, null], \"c\": {\"z\": 1.0, \"y\": \"x\"}}",
         "{\"a\":[true,false,null],\"b\":1,\"c\":{\"y\":\"x\",\"z\":1.0}}"},
        {"\"h\\u00e9llo \\u2713 \\ud834\\udd1e\"", "\"h\\u00e9llo \\u2713 \\ud834\\udd1e\""},
        {"\"tab\\there\\nnew \\\"q\\\" back\\\\ \\u0001 \\u007f\"",
         "\"tab\\there\\nnew \\\"q\\\" back\\\\ \\u0001 \\u007f\""},
        {"[1e-5, 2.50, -0, 1E3]", "[1e-05,2.5,0,1000.0]"},
        {"{\"\\u00e9\": 1, \"z\": 2, \"Z\": 3}", "{\"Z\":3,\"z\":2,\"\\u00e9\":1}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = dumps_text(cases[i][0]);
        assert_string_equal(got, cases[i][1]);
        free(got);
    }
}

static void str_matches_python(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        /* str(json.loads(x)) */
        {"[1, 2.5, \"a\", true, null]", "[1, 2.5, 'a', True, None]"},
        {"{\"b\": \"it's\", \"a\": [\"x\\ny\"]}", "{'b': \"it's\", 'a': ['x\\ny']}"},
        {"[\"both ' and \\\"\"]", "['both \\' and \"']"},
        {"\"plain text\"", "plain text"},
        {"false", "False"},
        {"1e16", "1e+16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loads(cases[i][0], JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        struct strbuf sb;
        strbuf_init(&sb);
        pyjson_str(v, &sb);
        assert_string_equal(sb.data, cases[i][1]);
        strbuf_free(&sb);
        json_decref(v);
    }
}

static void decode_follows_toolkit(void **state)
{
    (void)state;
    json_t *v = pyjson_decode_or_string("0.5");
    assert_true(json_is_real(v));
    json_decref(v);
    v = pyjson_decode_or_string("\"quoted\"");
    assert_string_equal(json_string_value(v), "quoted");
    json_decref(v);
    v = pyjson_decode_or_string("{oops");
    assert_string_equal(json_string_value(v), "{oops");
    json_decref(v);
    v = pyjson_decode_or_string("");
    assert_string_equal(json_string_value(v), "");
    json_decref(v);
}

static void truthiness_and_membership(void **state)
{
    (void)state;
    const char *falsy[] = {"0", "0.0", "\"\"", "[]", "{}", "false", "null"};
    const char *truthy[] = {"1", "-0.5", "\"0\"", "[0]", "{\"a\": 0}", "true"};
    for (size_t i = 0; i < sizeof falsy / sizeof *falsy; i++) {
        json_t *v = json_loads(falsy[i], JSON_DECODE_ANY, NULL);
        assert_false(pyjson_truthy(v));
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof truthy / sizeof *truthy; i++) {
        json_t *v = json_loads(truthy[i], JSON_DECODE_ANY, NULL);
        assert_true(pyjson_truthy(v));
        json_decref(v);
    }
    json_t *list = json_loads("[\"train1\", 3]", 0, NULL), *text = json_string("train12");
    assert_true(pyjson_contains(list, "train1"));
    assert_false(pyjson_contains(list, "train"));
    assert_true(pyjson_contains(text, "train1")); /* Python's `in` on a str is a substring test */
    json_decref(list);
    json_decref(text);
    assert_int_equal(utf8_length("h\xc3\xa9llo \xf0\x9d\x84\x9e"), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(float_repr_matches_python), cmocka_unit_test(dumps_matches_python),
        cmocka_unit_test(str_matches_python),        cmocka_unit_test(decode_follows_toolkit),
        cmocka_unit_test(truthiness_and_membership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
