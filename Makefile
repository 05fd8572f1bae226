# The two commands of the README:
#   make run    installs what is missing, builds, builds the guest images, starts bureaud
#   make test   installs what is missing, builds, builds the guest images, runs every test
BUILD ?= build
STATE ?= $(CURDIR)/var/state
IMAGES ?= $(CURDIR)/var/images
LISTEN ?= 127.0.0.1:8080
DEPS_STAMP = var/.deps-$(shell cat scripts/deps.sh package.json 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: all deps images run test unit e2e bench format clean

all: $(DEPS_STAMP) $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(DEPS_STAMP): scripts/deps.sh
	scripts/deps.sh
	@mkdir -p var && rm -f var/.deps-* && touch $@

deps:
	scripts/deps.sh

$(BUILD)/build.ninja: $(DEPS_STAMP)
	meson setup $(BUILD) --wipe >/dev/null 2>&1 || meson setup $(BUILD)

images: all
	image/build.sh --out $(IMAGES) --agent $(BUILD)/bureau-agent tiny desktop

run: all images
	$(BUILD)/bureaud --listen $(LISTEN) --state-dir $(STATE) --image-dir $(IMAGES) --image-gc on

test: all images
	tests/run.sh --build $(BUILD) --images $(IMAGES)

unit: all
	meson test -C $(BUILD) --print-errorlogs

bench: all images
	bench/api --build $(BUILD) --images $(IMAGES)
	bench/lifecycle --build $(BUILD) --images $(IMAGES)
	bench/vnc --build $(BUILD) --images $(IMAGES)
	bench/web --build $(BUILD) --images $(IMAGES) --desktop

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
