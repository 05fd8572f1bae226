/* Unit tests of the CLI's pure parts: argument parsing, the config file,
 * tables, URL escaping, the SSE parser, error mapping and --wait checks. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "tap.h"

static int parse(const char *line, struct cli_args *a, const struct cli_command **cmd,
		 struct err *err)
{
	static char copy[512];
	char *argv[32];
	int argc = 0;

	snprintf(copy, sizeof(copy), "%s", line);
	for (char *t = strtok(copy, " "); t && argc < 32; t = strtok(NULL, " "))
		argv[argc++] = t;
	err_clear(err);
	return cli_args_parse(argc, argv, a, cmd, err);
}

static void test_args(void)
{
	const struct cli_command *cmd;
	struct cli_args a;
	struct err err;

	ok(parse("desktops ls", &a, &cmd, &err) == 0 && cmd && cmd->fn == cmd_desktops_ls,
	   "args: desktops ls finds its command");
	ok(parse("desktops create web-1 --tier pro --image=tiny --wait", &a, &cmd, &err) == 0 &&
	       cmd->fn == cmd_desktops_create && a.npos == 1 && strcmp(a.pos[0], "web-1") == 0 &&
	       strcmp(a.tier, "pro") == 0 && strcmp(a.image, "tiny") == 0 && a.wait,
	   "args: create takes a name, --tier VALUE, --image=VALUE and --wait");
	ok(parse("--json --endpoint http://h:1 keys ls", &a, &cmd, &err) == 0 && a.json &&
	       strcmp(a.endpoint, "http://h:1") == 0 && cmd->fn == cmd_keys_ls,
	   "args: global flags may come before the command");
	ok(parse("desktops ls --json", &a, &cmd, &err) == 0 && a.json,
	   "args: global flags may come after the command");
	ok(parse("desktops", &a, &cmd, &err) == -1 && strcmp(err.code, "usage") == 0,
	   "args: a group without a subcommand is a usage error");
	ok(parse("frobnicate", &a, &cmd, &err) == -1 && strstr(err.msg, "frobnicate"),
	   "args: an unknown command is a usage error naming it");
	ok(parse("desktops ls --bogus", &a, &cmd, &err) == -1 && strstr(err.msg, "--bogus"),
	   "args: an unknown flag is a usage error naming it");
	ok(parse("desktops ls --tier pro", &a, &cmd, &err) == -1 && strstr(err.msg, "--tier"),
	   "args: a flag of another command is refused");
	ok(parse("desktops get", &a, &cmd, &err) == -1 && strstr(err.msg, "missing"),
	   "args: a missing argument is a usage error");
	ok(parse("desktops get a b", &a, &cmd, &err) == -1 && strstr(err.msg, "unexpected"),
	   "args: an extra argument is a usage error");
	ok(parse("desktops stop a b c --wait", &a, &cmd, &err) == 0 && cmd->fn == cmd_desktops_stop &&
	       a.npos == 3 && strcmp(a.pos[2], "c") == 0 && a.wait,
	   "args: stop takes several desktops");
	{
		char *argv[CLI_BULK_MAX + 3] = {"desktops", "rm"};

		for (int i = 2; i < CLI_BULK_MAX + 3; i++)
			argv[i] = "x";
		err_clear(&err);
		ok(cli_args_parse(CLI_BULK_MAX + 2, argv, &a, &cmd, &err) == 0 && a.npos == CLI_BULK_MAX,
		   "args: rm takes %d desktops", CLI_BULK_MAX);
		ok(cli_args_parse(CLI_BULK_MAX + 3, argv, &a, &cmd, &err) == -1 &&
		       strstr(err.msg, "unexpected"),
		   "args: more than %d desktops at once is a usage error", CLI_BULK_MAX);
	}
	ok(parse("desktops create x --tier", &a, &cmd, &err) == -1 && strstr(err.msg, "value"),
	   "args: a flag without its value is a usage error");
	ok(parse("desktops ls --json=1", &a, &cmd, &err) == -1,
	   "args: a value for a switch is a usage error");
	ok(parse("desktops start x --wait --timeout 0", &a, &cmd, &err) == -1,
	   "args: --timeout 0 is refused");
	ok(parse("desktops start x --wait --timeout 30", &a, &cmd, &err) == 0 && a.timeout_s == 30,
	   "args: --timeout sets the wait in seconds");
	ok(parse("desktops get -- --odd", &a, &cmd, &err) == 0 && strcmp(a.pos[0], "--odd") == 0,
	   "args: -- ends the flags");
	ok(parse("desktops get -x", &a, &cmd, &err) == -1,
	   "args: an unknown short flag is refused");
	ok(parse("--help", &a, &cmd, &err) == 0 && a.help && !cmd, "args: --help alone");
	ok(parse("help", &a, &cmd, &err) == 0 && a.help, "args: help is --help");
	ok(parse("desktops --help", &a, &cmd, &err) == 0 && a.help,
	   "args: group --help is help, not an error");
	ok(parse("events", &a, &cmd, &err) == 0 && cmd->fn == cmd_events && a.npos == 0,
	   "args: one-word command");
	ok(parse("events now", &a, &cmd, &err) == -1, "args: one-word command refuses arguments");
	ok(parse("screenshot dsk_1 out.png", &a, &cmd, &err) == 0 && a.npos == 2,
	   "args: screenshot takes an id and a file");
	ok(parse("login --email a@b --password p --show-key", &a, &cmd, &err) == 0 &&
	       strcmp(a.email, "a@b") == 0 && a.show_key,
	   "args: login flags");
	ok(parse("", &a, &cmd, &err) == -1, "args: no command is a usage error");
}

/* The agent's commands: chat, approvals, egress. */
static void test_agent_args(void)
{
	const struct cli_command *cmd;
	struct cli_args a;
	struct err err;

	ok(parse("chat web-1 hello", &a, &cmd, &err) == 0 && cmd->fn == cmd_chat && a.npos == 2 &&
	       !strcmp(a.pos[0], "web-1") && !strcmp(a.pos[1], "hello"),
	   "args: chat takes a desktop and a message");
	ok(parse("chat web-1", &a, &cmd, &err) == -1 && strstr(err.msg, "missing"),
	   "args: chat without a message is a usage error");
	ok(parse("chat web-1 a b", &a, &cmd, &err) == -1 && strstr(err.msg, "unexpected"),
	   "args: chat takes one message (quote it)");
	ok(parse("chat web-1 hi --note x", &a, &cmd, &err) == -1 && strstr(err.msg, "--note"),
	   "args: --note does not apply to chat");
	ok(parse("approvals ls", &a, &cmd, &err) == 0 && cmd->fn == cmd_approvals_ls,
	   "args: approvals ls");
	ok(parse("approvals approve apr_1 --note fine", &a, &cmd, &err) == 0 &&
	       cmd->fn == cmd_approvals_approve && !strcmp(a.pos[0], "apr_1") &&
	       !strcmp(a.note, "fine"),
	   "args: approvals approve ID --note TEXT");
	ok(parse("approvals deny apr_1", &a, &cmd, &err) == 0 && cmd->fn == cmd_approvals_deny &&
	       !a.note,
	   "args: approvals deny ID, the note optional");
	ok(parse("approvals deny", &a, &cmd, &err) == -1, "args: approvals deny without an id");
	ok(parse("approvals ls --note x", &a, &cmd, &err) == -1, "args: --note only on a decision");
	ok(parse("approvals maybe x", &a, &cmd, &err) == -1 && strstr(err.msg, "maybe"),
	   "args: an unknown approvals verb is refused");
	ok(parse("egress ls ws_1", &a, &cmd, &err) == 0 && cmd->fn == cmd_egress_ls,
	   "args: egress ls WORKSPACE");
	ok(parse("egress allow ws_1 api.example.com", &a, &cmd, &err) == 0 &&
	       cmd->fn == cmd_egress_allow && !strcmp(a.pos[1], "api.example.com"),
	   "args: egress allow WORKSPACE PATTERN");
	ok(parse("egress deny ws_1 api.example.com", &a, &cmd, &err) == 0 &&
	       cmd->fn == cmd_egress_deny,
	   "args: egress deny WORKSPACE PATTERN");
	ok(parse("egress allow ws_1", &a, &cmd, &err) == -1, "args: egress allow needs a pattern");
	ok(parse("egress log web-1", &a, &cmd, &err) == 0 && cmd->fn == cmd_egress_log,
	   "args: egress log DESKTOP");
	ok(parse("egress ls", &a, &cmd, &err) == -1, "args: egress ls needs a workspace");
}

/* Snapshots and forks. */
static void test_snapshot_args(void)
{
	const struct cli_command *cmd;
	struct cli_args a;
	struct err err;

	ok(parse("snapshots ls web-1", &a, &cmd, &err) == 0 && cmd->fn == cmd_snapshots_ls &&
	       a.npos == 1 && !strcmp(a.pos[0], "web-1"),
	   "args: snapshots ls DESKTOP");
	ok(parse("snapshots ls", &a, &cmd, &err) == -1 && strstr(err.msg, "missing") &&
	       strstr(err.msg, "snapshots ls ID"),
	   "args: snapshots ls without a desktop names the missing argument");
	ok(parse("snapshots ls a b", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "unexpected argument \"b\""),
	   "args: snapshots ls takes one desktop");
	ok(parse("snapshots create web-1 --name before-upgrade --wait --timeout 60", &a, &cmd,
		 &err) == 0 &&
	       cmd->fn == cmd_snapshots_create && !strcmp(a.name, "before-upgrade") && a.wait &&
	       a.timeout_s == 60,
	   "args: snapshots create DESKTOP --name N --wait --timeout S");
	ok(parse("snapshots create web-1", &a, &cmd, &err) == 0 && !a.name && !a.wait,
	   "args: snapshots create without --name (a default name) or --wait");
	ok(parse("snapshots create web-1 --name=x", &a, &cmd, &err) == 0 && !strcmp(a.name, "x"),
	   "args: --name=VALUE");
	ok(parse("snapshots create web-1 --name", &a, &cmd, &err) == -1 && strstr(err.msg, "value"),
	   "args: --name without its value");
	ok(parse("snapshots create web-1 base", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "unexpected"),
	   "args: the name is a flag, not an argument");
	ok(parse("snapshots create web-1 --memory", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "unknown flag --memory"),
	   "args: --memory is unknown (the desktop's state decides what a snapshot holds)");
	ok(parse("snapshots ls web-1 --name x", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "--name") && strstr(err.msg, "snapshots ls"),
	   "args: --name does not apply to snapshots ls");
	ok(parse("snapshots restore web-1 snp_1 --wait", &a, &cmd, &err) == 0 &&
	       cmd->fn == cmd_snapshots_restore && a.npos == 2 && !strcmp(a.pos[1], "snp_1") &&
	       a.wait,
	   "args: snapshots restore DESKTOP SNAPSHOT --wait");
	ok(parse("snapshots restore web-1", &a, &cmd, &err) == -1 && strstr(err.msg, "missing"),
	   "args: snapshots restore without a snapshot");
	ok(parse("snapshots restore web-1 a b", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "unexpected"),
	   "args: snapshots restore takes one snapshot");
	ok(parse("snapshots restore web-1 base --name x", &a, &cmd, &err) == -1,
	   "args: --name does not apply to a restore");
	ok(parse("snapshots rm web-1 base", &a, &cmd, &err) == 0 && cmd->fn == cmd_snapshots_rm &&
	       !strcmp(a.pos[1], "base"),
	   "args: snapshots rm DESKTOP SNAPSHOT");
	ok(parse("snapshots rm web-1", &a, &cmd, &err) == -1,
	   "args: snapshots rm without a snapshot");
	ok(parse("snapshots rm web-1 a b", &a, &cmd, &err) == -1,
	   "args: snapshots rm takes one snapshot");
	ok(parse("snapshots", &a, &cmd, &err) == -1 && strstr(err.msg, "subcommand"),
	   "args: snapshots needs a subcommand");
	ok(parse("snapshots take web-1", &a, &cmd, &err) == -1 && strstr(err.msg, "snapshots take"),
	   "args: an unknown snapshots verb is refused");
	ok(parse("desktops create copy --from-snapshot snp_1 --wait", &a, &cmd, &err) == 0 &&
	       cmd->fn == cmd_desktops_create && !strcmp(a.from_snapshot, "snp_1") &&
	       !a.from_desktop && a.wait,
	   "args: desktops create NAME --from-snapshot SNAPSHOT");
	ok(parse("desktops create copy --from-snapshot base --from-desktop web-1", &a, &cmd,
		 &err) == 0 &&
	       !strcmp(a.from_snapshot, "base") && !strcmp(a.from_desktop, "web-1"),
	   "args: --from-desktop names the snapshot's desktop");
	ok(parse("desktops create copy --from-desktop web-1", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "--from-desktop needs --from-snapshot"),
	   "args: --from-desktop alone is a usage error");
	ok(parse("desktops create copy --from-snapshot", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "value"),
	   "args: --from-snapshot without its value");
	ok(parse("desktops create --from-snapshot snp_1", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "missing"),
	   "args: a fork needs a name");
	ok(parse("desktops ls --from-snapshot snp_1", &a, &cmd, &err) == -1 &&
	       strstr(err.msg, "--from-snapshot"),
	   "args: --from-snapshot applies to create only");
}

static void test_config(void)
{
	struct cli_config c = {0};
	struct err err = ERR_INIT;
	char dir[] = "/tmp/bureau-cli-test-XXXXXX", path[256];
	struct stat st;

	ok(cli_config_parse("# comment\n\nendpoint = http://h:9\n  key=bk_abc  \n"
			    "workspace = 'my ws'\nunknown = 1\n",
			    &c, &err) == 0,
	   "config: parses comments, blank lines, spaces and unknown keys");
	ok(c.endpoint && strcmp(c.endpoint, "http://h:9") == 0, "config: endpoint");
	ok(c.key && strcmp(c.key, "bk_abc") == 0, "config: key without surrounding spaces");
	ok(c.workspace && strcmp(c.workspace, "my ws") == 0, "config: quoted value");
	ok(cli_config_parse("key = bk_new # a comment\r\n", &c, &err) == 0 &&
	       strcmp(c.key, "bk_new") == 0,
	   "config: trailing comment and CRLF are dropped; later values win");
	ok(cli_config_parse("endpoint http://x\n", &c, &err) == -1 && strstr(err.msg, "line 1"),
	   "config: a line without '=' is an error naming the line");
	cli_config_release(&c);

	if (!mkdtemp(dir)) {
		ok(0, "config: mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/sub/config", dir);
	c.endpoint = strdup("http://127.0.0.1:8080");
	c.key = strdup("bk_secret");
	ok(cli_config_write(path, &c, &err) == 0, "config: write creates the folder");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "config: file mode is 0600");
	cli_config_release(&c);
	ok(cli_config_load(path, &c, &err) == 0 && c.key && strcmp(c.key, "bk_secret") == 0 &&
	       strcmp(c.endpoint, "http://127.0.0.1:8080") == 0 && !c.workspace,
	   "config: what was written reads back");
	cli_config_release(&c);
	snprintf(path, sizeof(path), "%s/missing", dir);
	ok(cli_config_load(path, &c, &err) == 0 && !c.key, "config: a missing file is no error");
	snprintf(path, sizeof(path), "%s/sub/config", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);

	setenv("BUREAU_CONFIG", "/x/y", 1);
	char *p = cli_config_path();
	ok(p && strcmp(p, "/x/y") == 0, "config: BUREAU_CONFIG wins");
	free(p);
	unsetenv("BUREAU_CONFIG");
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/u", 1);
	p = cli_config_path();
	ok(p && strcmp(p, "/home/u/.config/bureau/config") == 0, "config: ~/.config by default");
	free(p);
}

static void test_table(void)
{
	static const char *const h[] = {"ID", "NAME", "STATE"};
	const char *r1[] = {"dsk_1", "a", "running"};
	const char *r2[] = {"dsk_22", "longer-name", NULL};
	const char *r3[] = {"x", "\x1b[31mred", "été"};
	struct buf b = BUF_INIT;
	struct table t;

	table_init(&t, 3, h);
	table_add(&t, r1);
	table_add(&t, r2);
	table_render(&t, &b);
	ok(strcmp(b.data, "ID      NAME         STATE\n"
			  "dsk_1   a            running\n"
			  "dsk_22  longer-name  -\n") == 0,
	   "table: columns aligned, two spaces apart, NULL shown as -");
	table_release(&t);
	buf_reset(&b);

	table_init(&t, 3, h);
	table_add(&t, r3);
	table_render(&t, &b);
	ok(strchr(b.data, '\x1b') == NULL, "table: control characters never reach the terminal");
	ok(strstr(b.data, "été\n") != NULL, "table: last column not padded, UTF-8 kept");
	ok(cli_text_width("été") == 3, "table: width counts code points");
	table_release(&t);
	buf_release(&b);

	json_t *v =
	    json_pack("{s:n, s:i, s:f, s:b, s:s}", "n", "i", 42, "f", 1.5, "b", 1, "s", "x");
	char *c;
	ok(strcmp(c = cli_cell(json_object_get(v, "n")), "-") == 0, "cell: null is -");
	free(c);
	ok(strcmp(c = cli_cell(json_object_get(v, "i")), "42") == 0, "cell: integer");
	free(c);
	ok(strcmp(c = cli_cell(json_object_get(v, "f")), "1.50") == 0, "cell: real");
	free(c);
	ok(strcmp(c = cli_cell(json_object_get(v, "missing")), "-") == 0, "cell: absent is -");
	free(c);
	json_decref(v);

	static const struct {
		json_int_t n;
		const char *want;
	} sizes[] = {{0, "0 B"},
		     {1023, "1023 B"},
		     {1536, "1.5 KB"},
		     {202357675, "193.0 MB"},
		     {(json_int_t)5 << 30, "5.0 GB"},
		     {(json_int_t)3 << 40, "3.0 TB"},
		     {(json_int_t)4096 << 40, "4096.0 TB"}};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		json_t *n = json_integer(sizes[i].n);
		c = cli_size_cell(n);
		ok(strcmp(c, sizes[i].want) == 0, "size cell: %lld is %s", (long long)sizes[i].n,
		   sizes[i].want);
		free(c);
		json_decref(n);
	}
	ok(strcmp(c = cli_size_cell(json_null()), "-") == 0, "size cell: null is -");
	free(c);
	ok(strcmp(c = cli_size_cell(NULL), "-") == 0, "size cell: absent is -");
	free(c);
}

static int escaped(const char *in, const char *want)
{
	struct buf b = BUF_INIT;
	int same;

	cli_url_escape(&b, in);
	same = strcmp(b.data ? b.data : "", want) == 0;
	buf_release(&b);
	return same;
}

static void test_escape(void)
{
	ok(escaped("dsk_abc-1.2~x", "dsk_abc-1.2~x"), "escape: unreserved characters stay");
	ok(escaped("a/b", "a%2Fb"), "escape: a slash cannot add a path segment");
	ok(escaped("a b?c#d&e=f%", "a%20b%3Fc%23d%26e%3Df%25"),
	   "escape: space, ?, #, &, = and %% are encoded");
	ok(escaped("..", "%2E%2E"), "escape: a dot-dot segment is encoded whole");
	ok(escaped("é", "%C3%A9"), "escape: UTF-8 bytes are encoded");
	ok(escaped("", ""), "escape: empty stays empty");
}

struct seen {
	int n;
	char id[64], event[64], data[256];
};

static void on_sse(void *arg, const char *id, const char *event, const char *data)
{
	struct seen *s = arg;

	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->event, sizeof(s->event), "%s", event);
	snprintf(s->data, sizeof(s->data), "%s", data);
}

static void test_sse(void)
{
	const char *stream = ": keep-alive\n\nid: 7\nevent: desktop.state\ndata: {\"a\":1}\n\n";
	struct sse_parser p;
	struct seen s = {0};

	sse_init(&p, on_sse, &s);
	for (size_t i = 0; i < strlen(stream); i++)
		sse_feed(&p, stream + i, 1); /* byte by byte: chunking does not matter */
	ok(s.n == 1, "sse: a comment is no event; one event dispatched");
	ok(strcmp(s.id, "7") == 0 && strcmp(s.event, "desktop.state") == 0 &&
	       strcmp(s.data, "{\"a\":1}") == 0,
	   "sse: id, event and data");
	sse_feed(&p, "data: x\r\ndata: y\r\n\r\n", 20);
	ok(s.n == 2 && strcmp(s.data, "x\ny") == 0 && strcmp(s.event, "message") == 0,
	   "sse: CRLF lines, multi-line data, default event type");
	ok(strcmp(p.last_id, "7") == 0 && strcmp(s.id, "7") == 0, "sse: the last id persists");
	sse_feed(&p, "id: 9\n\n", 7);
	ok(s.n == 2 && strcmp(p.last_id, "9") == 0, "sse: an id alone updates without an event");
	sse_feed(&p, "data:z\r", 7);
	sse_feed(&p, "\r", 1);
	ok(s.n == 3 && strcmp(s.data, "z") == 0, "sse: bare CR ends lines, no space after colon");
	sse_release(&p);
}

static void test_errors(void)
{
	struct err err = ERR_INIT;
	const char *body = "{\"error\":{\"code\":\"plan_limit\",\"message\":\"too many\"}}";

	cli_err_from_reply(422, body, strlen(body), &err);
	ok(err.status == 422 && strcmp(err.code, "plan_limit") == 0 &&
	       strcmp(err.msg, "too many") == 0,
	   "errors: code and message come from the API's JSON");
	ok(cli_exit_code(&err) == CLI_EXIT_API, "errors: an API error exits 1");
	cli_err_from_reply(404, "{\"error\":{\"code\":\"not_found\",\"message\":\"x\"}}", 44, &err);
	ok(cli_exit_code(&err) == CLI_EXIT_NOT_FOUND, "errors: 404 exits 4");
	cli_err_from_reply(502, "<html>", 6, &err);
	ok(err.status == 502 && strstr(err.msg, "502"),
	   "errors: a non-JSON error names the status");
	err_set(&err, 0, "unreachable", "down");
	ok(cli_exit_code(&err) == CLI_EXIT_UNREACHABLE, "errors: unreachable exits 3");
	err_set(&err, 2, "usage", "bad");
	ok(cli_exit_code(&err) == CLI_EXIT_USAGE, "errors: usage exits 2");
}

static void test_wait(void)
{
	struct err err = ERR_INIT;
	json_t *d = json_pack("{s:s, s:s}", "state", "booting", "stateChangedAt", "t1");

	ok(cli_wait_check(d, "running", NULL, &err) == 0, "wait: booting is not running yet");
	json_object_set_new(d, "state", json_string("running"));
	ok(cli_wait_check(d, "running", NULL, &err) == 1, "wait: running is done");
	ok(cli_wait_check(d, "running", "t1", &err) == 0,
	   "wait: restart waits for a newer stateChangedAt");
	ok(cli_wait_check(d, "stopped", NULL, &err) == 0, "wait: running is not stopped");
	json_object_set_new(d, "state", json_string("error"));
	json_object_set_new(d, "reason", json_string("boot failed"));
	ok(cli_wait_check(d, "running", NULL, &err) == -1 && strstr(err.msg, "boot failed"),
	   "wait: error fails with the reason");
	json_object_set_new(d, "state", json_string("destroying"));
	ok(cli_wait_check(d, "gone", NULL, &err) == 0, "wait: destroying is not gone yet");
	ok(cli_wait_check(d, "running", NULL, &err) == -1,
	   "wait: a desktop being destroyed will never run");
	json_decref(d);
}

int main(void)
{
	test_args();
	test_agent_args();
	test_snapshot_args();
	test_config();
	test_table();
	test_escape();
	test_sse();
	test_errors();
	test_wait();
	return tap_done();
}
