/* The pilot's pure parts: the SSE parser, both providers' stream formats
 * reduced to one turn, and tool argument validation. */
#include "agent/pilot.h"
#include "tap.h"

#include <string.h>

struct seen {
	char names[16][64];
	char data[16][512];
	int n;
};

static int collect(const char *event, const char *data, size_t len, void *arg)
{
	struct seen *s = arg;

	if (s->n < 16) {
		snprintf(s->names[s->n], 64, "%s", event);
		snprintf(s->data[s->n], 512, "%.*s", (int)len, data);
		s->n++;
	}
	return 0;
}

static void test_sse(void)
{
	struct sse_parser p;
	struct seen s = {0};
	const char *text = ": comment\r\nevent: one\r\ndata: a\r\ndata:b\r\n\r\n"
			   "data: {\"x\":1}\n\nid: 7\nretry: 10\n\nevent: two\ndata\n\n";

	sse_init(&p);
	/* fed one byte at a time: events must not depend on how bytes arrive */
	for (size_t i = 0; i < strlen(text); i++)
		sse_feed(&p, text + i, 1, collect, &s);
	ok(s.n == 3, "three events (a block without data is no event): %d", s.n);
	ok(!strcmp(s.names[0], "one") && !strcmp(s.data[0], "a\nb"), "data lines join with \\n, CRLF lines");
	ok(!strcmp(s.names[1], "message") && !strcmp(s.data[1], "{\"x\":1}"), "an unnamed event is \"message\"");
	ok(!strcmp(s.names[2], "two") && !strcmp(s.data[2], ""), "\"data\" without a colon is empty data");
	sse_release(&p);
}

static void test_sse_limit(void)
{
	struct sse_parser p;
	struct seen s = {0};
	static char big[PILOT_SSE_LINE_MAX + 16];
	int r = 0;

	memset(big, 'x', sizeof(big));
	memcpy(big, "data: ", 6);
	sse_init(&p);
	r = sse_feed(&p, big, sizeof(big), collect, &s);
	ok(r == -1 && s.n == 0, "a line over the limit is refused");
	sse_release(&p);
}

static int feed_all(enum llm_format fmt, const char *stream, struct llm_turn *t)
{
	struct sse_parser p;
	int r;

	llm_turn_init(t, fmt);
	sse_init(&p);
	r = sse_feed(&p, stream, strlen(stream),
		     fmt == LLM_ANTHROPIC ? llm_anthropic_event : llm_openai_event, t);
	sse_release(&p);
	return r ? r : llm_turn_finish(t);
}

static const char anthropic_ok[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"shell\",\"input\":{}}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": \\\"l\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"s\\\"}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static void test_anthropic(void)
{
	struct llm_turn t;
	char cut[sizeof(anthropic_ok)];

	ok(feed_all(LLM_ANTHROPIC, anthropic_ok, &t) == 0, "anthropic: a complete stream parses");
	ok(t.text.len == 5 && !memcmp(t.text.data, "Hello", 5), "anthropic: text deltas joined");
	ok(t.ncalls == 1 && !strcmp(t.calls[0].id, "toolu_1") && !strcmp(t.calls[0].name, "shell") &&
	       !strcmp(json_string_value(json_object_get(t.calls[0].input, "command")), "ls"),
	   "anthropic: the tool call's partial JSON assembled");
	ok(t.input_tokens == 25 && t.output_tokens == 15 && !strcmp(t.stop, "tool_use"),
	   "anthropic: usage and stop reason");
	llm_turn_release(&t);

	memcpy(cut, anthropic_ok, sizeof(cut));
	*strstr(cut, "event: message_delta") = '\0';
	ok(feed_all(LLM_ANTHROPIC, cut, &t) == -1 && !strcmp(t.error_kind, "cut"),
	   "anthropic: a stream without message_stop is cut");
	llm_turn_release(&t);
	ok(feed_all(LLM_ANTHROPIC, "event: content_block_delta\ndata: {\"type\": oops\n\n", &t) == -1 &&
	       !strcmp(t.error_kind, "malformed"),
	   "anthropic: malformed JSON is an error");
	llm_turn_release(&t);
	ok(feed_all(LLM_ANTHROPIC,
		    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
		    &t) == -1 && !strcmp(t.error_kind, "overloaded"),
	   "anthropic: an error event (overloaded) is retryable");
	llm_turn_release(&t);
	ok(feed_all(LLM_ANTHROPIC,
		    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"shell\"}}\n\n"
		    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{nope\"}}\n\n"
		    "data: {\"type\":\"message_stop\"}\n\n", &t) == -1 && !strcmp(t.error_kind, "malformed"),
	   "anthropic: malformed tool arguments are an error");
	llm_turn_release(&t);
}

static const char openai_ok[] =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"files\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"op\\\":\\\"read\\\",\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"path\\\":\\\"/etc/hostname\\\"}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9,\"total_tokens\":49}}\n\n"
    "data: [DONE]\n\n";

static void test_openai(void)
{
	struct llm_turn t;
	char cut[sizeof(openai_ok)];

	ok(feed_all(LLM_OPENAI, openai_ok, &t) == 0, "openai: a complete stream parses");
	ok(t.text.len == 2 && !memcmp(t.text.data, "Hi", 2), "openai: content deltas");
	ok(t.ncalls == 1 && !strcmp(t.calls[0].id, "call_1") && !strcmp(t.calls[0].name, "files") &&
	       !strcmp(json_string_value(json_object_get(t.calls[0].input, "path")), "/etc/hostname"),
	   "openai: tool call arguments assembled by index");
	ok(t.input_tokens == 40 && t.output_tokens == 9 && !strcmp(t.stop, "tool_calls"),
	   "openai: usage chunk and finish reason");
	llm_turn_release(&t);
	memcpy(cut, openai_ok, sizeof(cut));
	*strstr(cut, "data: [DONE]") = '\0';
	ok(feed_all(LLM_OPENAI, cut, &t) == -1 && !strcmp(t.error_kind, "cut"),
	   "openai: a stream without [DONE] is cut");
	llm_turn_release(&t);
	ok(feed_all(LLM_OPENAI, "data: {\"error\":{\"message\":\"boom\"}}\n\n", &t) == -1 &&
	       strstr(t.error, "boom"),
	   "openai: an error object in the stream");
	llm_turn_release(&t);
	ok(feed_all(LLM_OPENAI, "data: not json\n\n", &t) == -1 && !strcmp(t.error_kind, "malformed"),
	   "openai: malformed JSON is an error");
	llm_turn_release(&t);
}

static int check(const char *name, const char *input, int display, char *action)
{
	json_t *in = json_loads(input, 0, NULL);
	char why[256];
	int r = tool_check(name, in ? in : json_null(), display, action, 256, why, sizeof(why));

	json_decref(in);
	return r;
}

static void test_tools(void)
{
	char a[256];

	ok(check("shell", "{\"command\":\"ls -l\"}", 0, a) == 0 && !strcmp(a, "ls -l"), "shell: the command is the action");
	ok(check("shell", "{\"command\":\"\"}", 0, a) == -1, "shell: an empty command is refused");
	ok(check("shell", "{\"command\":3}", 0, a) == -1, "shell: a command that is not a string is refused");
	ok(check("shell", "{\"command\":\"x\",\"timeout\":0}", 0, a) == -1, "shell: timeout 0 is refused");
	ok(check("shell", "{\"command\":\"x\",\"timeout\":99999}", 0, a) == -1, "shell: a timeout over the limit is refused");
	ok(check("files", "{\"op\":\"write\",\"path\":\"/home/agent/a\",\"content\":\"x\"}", 0, a) == 0 &&
	       !strcmp(a, "write /home/agent/a"), "files: write names its path");
	ok(check("files", "{\"op\":\"write\",\"path\":\"relative\",\"content\":\"x\"}", 0, a) == -1, "files: a relative path is refused");
	ok(check("files", "{\"op\":\"edit\",\"path\":\"/a\",\"old\":\"\",\"new\":\"x\"}", 0, a) == -1, "files: edit needs old text");
	ok(check("files", "{\"op\":\"chmod\",\"path\":\"/a\"}", 0, a) == -1, "files: an unknown op is refused");
	ok(check("computer", "{\"action\":\"screenshot\"}", 0, a) == -1, "computer: refused without a display");
	ok(check("computer", "{\"action\":\"left_click\",\"coordinate\":[10,20]}", 1, a) == 0 &&
	       !strcmp(a, "left_click 10,20"), "computer: a click names its place");
	ok(check("computer", "{\"action\":\"left_click\",\"coordinate\":[5000,20]}", 1, a) == -1, "computer: a click off the screen is refused");
	ok(check("computer", "{\"action\":\"mouse_move\"}", 1, a) == -1, "computer: mouse_move needs a coordinate");
	ok(check("computer", "{\"action\":\"type\"}", 1, a) == -1, "computer: type needs text");
	ok(check("computer", "{\"action\":\"fly\"}", 1, a) == -1, "computer: an unknown action is refused");
	ok(check("browser", "{}", 1, a) == -1, "an unknown tool is refused");
	ok(check("shell", "[]", 1, a) == -1, "an input that is not an object is refused");
}

static void test_base64(void)
{
	char *s = base64_encode((const unsigned char *)"foobar", 6), *t = base64_encode((const unsigned char *)"fo", 2);

	ok(!strcmp(s, "Zm9vYmFy") && !strcmp(t, "Zm8="), "base64 of screenshots");
	free(s);
	free(t);
}

int main(void)
{
	test_sse();
	test_sse_limit();
	test_anthropic();
	test_openai();
	test_tools();
	test_base64();
	return tap_done();
}
