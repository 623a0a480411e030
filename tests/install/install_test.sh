#!/usr/bin/env bash
# Install the build into a temporary prefix, then build a consumer against it
# with pkg-config (shared and static) and with CMake's find_package, and run them;
# run the installed programs from that prefix after moving it.
set -euo pipefail
build=$1 cc=$2 src=$3 flags=${4:-} source=${5:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name hostmem.pc)")
export PKG_CONFIG_PATH=$libdir
"$cc" $flags "$src" $(pkg-config --cflags --libs hostmem) -Wl,-rpath,"$tmp/prefix/lib" -o "$tmp/shared"
"$tmp/shared"
"$cc" $flags "$src" -DHOSTMEM_STATIC_DEFINE $(pkg-config --cflags hostmem) "$tmp/prefix/lib/libhostmem.a" \
    $(pkg-config --libs-only-other --static hostmem) -ldl -lpthread -o "$tmp/static"
"$tmp/static"
mkdir "$tmp/cmake"
cp "$src" "$tmp/cmake/consumer.c"
cat > "$tmp/cmake/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(hostmem REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE hostmem::hostmem)
CMAKE
cmake -S "$tmp/cmake" -B "$tmp/cmake/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$tmp/cmake/build" >/dev/null
"$tmp/cmake/build/consumer"
# The public headers compile alone in strict ISO C (no POSIX feature macros)
# and in C++, with every warning.
for std in c99 c11 c17; do
    printf '#include <hostmem/mscoree.h>\nint main(void) { return hostmem_hresult_name(S_OK) == 0; }\n' |
        "$cc" -std=$std -pedantic -Wall -Wextra -Werror -I"$tmp/prefix/include" -x c -c - -o /dev/null
done
if command -v c++ >/dev/null; then
    # The SDK's class form, and with CINTERFACE the C form.
    printf '#include <hostmem/mscoree.h>\nint f(IHostMemoryManager *m, void **p) { return m->VirtualAlloc(0, 1, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, p) + IsEqualIID(IID_IUnknown, IID_IHostMalloc) + IsEqualIID(&IID_IUnknown, &IID_IHostMalloc); }\n' |
        c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$tmp/prefix/include" -x c++ -c - -o /dev/null
    printf '#define CINTERFACE\n#define COBJMACROS\n#include <hostmem/mscoree.h>\nint f(IHostMemoryManager *m) { return IHostMemoryManager_Release(m) + IsEqualIID(&IID_IUnknown, &IID_IHostMalloc); }\n' |
        c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$tmp/prefix/include" -x c++ -c - -o /dev/null
fi
# The documentation the header cites is installed with it.
for page in README.md api.md semantics.md policy.md; do
    if [ ! -f "$tmp/prefix/share/doc/hostmem/$page" ]; then
        echo "$tmp/prefix/share/doc/hostmem/$page: not installed" >&2
        exit 1
    fi
done
# Installed programs run from any prefix, even one moved after installing:
# they find libhostmem through a run path relative to themselves.
mv "$tmp/prefix" "$tmp/moved"
programs=0
for exe in "$tmp/moved/bin"/*; do
    head -c4 "$exe" | grep -q ELF || continue   # the analysis wrappers are scripts
    programs=$((programs + 1))
    if env -u LD_LIBRARY_PATH ldd "$exe" | grep 'not found'; then
        echo "$exe: a library it needs is not found from the installed prefix" >&2
        exit 1
    fi
done
if [ "$programs" -eq 0 ]; then
    echo "no installed program found in $tmp/moved/bin" >&2
    exit 1
fi
env -u LD_LIBRARY_PATH "$tmp/moved/bin/hostmem-demo" --cycles 1 --quiet >/dev/null
mv "$tmp/moved" "$tmp/prefix"
# hostmem.pc finds its prefix relative to itself whatever the depth of the
# libdir: a /usr install on Debian puts it in lib/x86_64-linux-gnu/pkgconfig.
if [ -n "$source" ]; then
    deep=lib/x86_64-linux-gnu
    cmake -S "$source" -B "$tmp/deep" -DCMAKE_INSTALL_LIBDIR=$deep -DHOSTMEM_WITH_LTTNG=OFF \
        -DHOSTMEM_BUILD_TESTS=OFF -DHOSTMEM_BUILD_BENCHMARKS=OFF -DHOSTMEM_BUILD_EXAMPLES=OFF >/dev/null
    mkdir -p "$tmp/prefix/$deep/pkgconfig"
    cp "$tmp/deep/hostmem.pc" "$tmp/prefix/$deep/pkgconfig/"
    for var in libdir:$deep includedir:include; do
        got=$(PKG_CONFIG_PATH="$tmp/prefix/$deep/pkgconfig" pkg-config --variable="${var%%:*}" hostmem)
        if [ "$(readlink -m "$got")" != "$(readlink -m "$tmp/prefix/${var#*:}")" ]; then
            echo "$tmp/deep/hostmem.pc: ${var%%:*} is $got, not $tmp/prefix/${var#*:}" >&2
            exit 1
        fi
    done
fi
# No lttng-ust in the library's own dependencies: it loads the provider at run time.
if ldd "$tmp/prefix/lib/libhostmem.so" | grep -q lttng; then
    echo "libhostmem.so links lttng-ust directly" >&2
    exit 1
fi
echo "install: pkg-config (shared, static) and find_package consumers ran; $programs installed programs run from a moved prefix"
