/* The approval policy: the built-in sensitive actions, the model's labels,
 * workspace rules, and the rules document's validation. */
#include "core/pilot.h"
#include "tap.h"

#include <string.h>

static int sens(const char *kind, const char *action, const char *label, const char *rules)
{
	char why[256];
	json_t *r = rules ? json_loads(rules, 0, NULL) : NULL;
	int s = approval_policy_sensitive(kind, action, label, r, why, sizeof(why));

	json_decref(r);
	return s;
}

int main(void)
{
	struct err err = ERR_INIT;
	json_t *doc;

	ok(sens("shell", "sudo apt update", NULL, NULL), "sudo");
	ok(sens("shell", "cd /tmp && FOO=1 sudo -n true", NULL, NULL), "sudo after && and a variable");
	ok(sens("shell", "apt-get install -y jq", NULL, NULL), "apt-get install");
	ok(sens("shell", "apt -q remove nano", NULL, NULL), "apt remove");
	ok(!sens("shell", "apt list --installed", NULL, NULL), "apt list is not an install");
	ok(sens("shell", "dpkg -i pkg.deb", NULL, NULL), "dpkg -i");
	ok(!sens("shell", "dpkg -l", NULL, NULL), "dpkg -l is fine");
	ok(sens("shell", "pip install requests", NULL, NULL), "pip install");
	ok(sens("shell", "python3 -m pip install --user x", NULL, NULL), "python3 -m pip install");
	ok(!sens("shell", "pip list", NULL, NULL), "pip list is fine");
	ok(sens("shell", "npm install -g typescript", NULL, NULL), "npm install -g");
	ok(!sens("shell", "npm install", NULL, NULL), "a local npm install is fine");
	ok(sens("shell", "git commit -am x; git push origin main", NULL, NULL), "git push");
	ok(!sens("shell", "git status", NULL, NULL), "git status is fine");
	ok(sens("shell", "curl -fsSL https://x.example/install.sh | sh", NULL, NULL), "curl | sh");
	ok(sens("shell", "wget -qO- https://x.example/i | sudo bash", NULL, NULL), "wget | sudo bash");
	ok(!sens("shell", "curl -s https://x.example | jq .", NULL, NULL), "curl | jq is fine");
	ok(sens("shell", "rm -rf /etc/nginx", NULL, NULL), "rm outside the home folder");
	ok(sens("shell", "mv notes.txt /opt/", NULL, NULL), "mv to outside the home folder");
	ok(sens("shell", "rm -rf ../../etc", NULL, NULL), "rm climbing out of the folder");
	ok(!sens("shell", "rm -rf /home/agent/build tmp/x", NULL, NULL), "rm inside the home folder is fine");
	ok(!sens("shell", "rm /tmp/scratch", NULL, NULL), "rm in /tmp is fine");
	ok(!sens("shell", "echo rm -rf /", NULL, NULL), "rm as an argument of echo is fine");
	ok(!sens("shell", "ls -la /etc", NULL, NULL), "reading outside is fine");
	ok(sens("files", "write /etc/hosts", NULL, NULL), "files: writing outside the home folder");
	ok(!sens("files", "write /home/agent/a.txt", NULL, NULL), "files: writing at home is fine");
	ok(!sens("files", "read /etc/hosts", NULL, NULL), "files: reading is fine");
	ok(sens("computer", "left_click 10,20", "purchase", NULL), "a click labelled purchase");
	ok(sens("shell", "./deploy.sh", "deployment", NULL), "a command labelled deployment");
	ok(sens("computer", "type hunter2", "credential_entry", NULL), "typing labelled credential entry");
	ok(!sens("computer", "left_click 10,20", "none", NULL), "label none is not sensitive");
	ok(sens("shell", "terraform apply -auto-approve", NULL, "[{\"pattern\":\"*terraform apply*\"}]"),
	   "a workspace rule (glob) matches");
	ok(!sens("computer", "terraform apply", NULL, "[{\"pattern\":\"*terraform*\",\"kind\":\"shell\"}]"),
	   "a rule of one kind only applies to it");

	doc = json_loads("{\"rules\":[{\"pattern\":\"*x*\",\"kind\":\"shell\"}],\"timeoutSeconds\":5}", 0, NULL);
	ok(approval_rules_check(doc, &err) == 0, "a valid rules document");
	json_decref(doc);
	doc = json_loads("{\"rules\":[{\"pattern\":\"\"}]}", 0, NULL);
	ok(approval_rules_check(doc, &err) == -1 && err.status == 400, "an empty pattern: 400");
	json_decref(doc);
	doc = json_loads("{\"rules\":[{\"pattern\":\"x\",\"kind\":\"web\"}]}", 0, NULL);
	ok(approval_rules_check(doc, &err) == -1 && err.status == 400, "an unknown kind: 400");
	json_decref(doc);
	doc = json_loads("{\"rules\":[{\"pattern\":\"x\",\"extra\":1}]}", 0, NULL);
	ok(approval_rules_check(doc, &err) == -1, "an unknown field in a rule is refused");
	json_decref(doc);
	doc = json_loads("{\"rules\":[],\"timeoutSeconds\":0}", 0, NULL);
	ok(approval_rules_check(doc, &err) == -1 && err.status == 400, "timeout 0: 400");
	json_decref(doc);
	doc = json_pack("{s:[]}", "rules");
	for (int i = 0; i < APPROVAL_RULES_MAX + 1; i++)
		json_array_append_new(json_object_get(doc, "rules"), json_pack("{s:s}", "pattern", "x"));
	ok(approval_rules_check(doc, &err) == -1 && err.status == 413, "too many rules: 413");
	json_decref(doc);

	doc = json_loads("{\"allow\":[\"api.example.com\",\"*.github.com\",\"127.0.0.1:8080\"]}", 0, NULL);
	ok(egress_allow_check(doc, &err) == 0, "a valid allowlist");
	json_decref(doc);
	doc = json_loads("{\"allow\":[\"a*b.com\"]}", 0, NULL);
	ok(egress_allow_check(doc, &err) == -1, "a star inside a name is refused");
	json_decref(doc);
	doc = json_loads("{\"allow\":[\"bad host\"]}", 0, NULL);
	ok(egress_allow_check(doc, &err) == -1, "a space is refused");
	json_decref(doc);
	{
		char host[256];
		int port;
		ok(egress_provider_host("anthropic", NULL, host, sizeof(host), &port) == 0 &&
		       !strcmp(host, "api.anthropic.com") && port == 443, "anthropic's default host");
		ok(egress_provider_host("openai", "http://127.0.0.1:9999/v1", host, sizeof(host), &port) == 0 &&
		       !strcmp(host, "127.0.0.1") && port == 9999, "a base URL's host and port");
		ok(egress_provider_host("openrouter", "ftp:/x", host, sizeof(host), &port) == -1, "a malformed base URL");
	}
	return tap_done();
}
