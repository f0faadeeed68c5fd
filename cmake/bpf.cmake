# bpf_skeleton(<target> <src.bpf.c>): compile a BPF program with clang and generate
# its libbpf skeleton with bpftool; <target> is an INTERFACE library whose include
# directory holds <name>.skel.h.  The target architecture is the one the top-level
# CMakeLists.txt checked (FS_BPF_TARGET_ARCH); clang's depfile lists every header
# the object includes (machine.h, catalog.h, vmlinux.h, bpf/*.bpf.h, ...), so
# editing any of them rebuilds the skeleton.
find_program(CLANG_BPF NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

function(bpf_skeleton target src)
  get_filename_component(name ${src} NAME_WE)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(obj ${out}/${name}.bpf.o)
  set(skel ${out}/${name}.skel.h)
  file(MAKE_DIRECTORY ${out})
  # System headers (asm/types.h via bpf_helpers.h) come after our own, from the
  # host's multiarch directory when it has one.
  set(sys_includes)
  if(CMAKE_LIBRARY_ARCHITECTURE)
    list(APPEND sys_includes -idirafter /usr/include/${CMAKE_LIBRARY_ARCHITECTURE})
  endif()
  list(APPEND sys_includes -idirafter /usr/include)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${CLANG_BPF} -g -O2 -Wall -target bpf -mcpu=v3 -D__TARGET_ARCH_${FS_BPF_TARGET_ARCH}
            -I${PROJECT_SOURCE_DIR}/bpf -I${PROJECT_SOURCE_DIR}/include ${sys_includes}
            -MD -MF ${obj}.d -MT ${skel}
            -c ${src} -o ${obj}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${src}
    DEPFILE ${obj}.d
    COMMENT "BPF ${name}: clang + bpftool gen skeleton"
    VERBATIM)
  add_custom_target(${target}_gen DEPENDS ${skel})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} INTERFACE ${out})
endfunction()
