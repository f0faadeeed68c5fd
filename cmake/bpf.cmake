# bpf_skeleton(<target> <src.bpf.c>): compile a BPF program with clang and generate
# its libbpf skeleton with bpftool; <target> is an INTERFACE library whose include
# directory holds <name>.skel.h.
find_program(CLANG_BPF NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

function(bpf_skeleton target src)
  get_filename_component(name ${src} NAME_WE)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(obj ${out}/${name}.bpf.o)
  set(skel ${out}/${name}.skel.h)
  file(MAKE_DIRECTORY ${out})
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${CLANG_BPF} -g -O2 -Wall -target bpf -mcpu=v3 -D__TARGET_ARCH_x86
            -I${PROJECT_SOURCE_DIR}/bpf -I${PROJECT_SOURCE_DIR}/include
            -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include
            -c ${src} -o ${obj}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${src} ${PROJECT_SOURCE_DIR}/include/forkscope/shared/catalog.h
            ${PROJECT_SOURCE_DIR}/include/forkscope/shared/machine.h
    COMMENT "BPF ${name}: clang + bpftool gen skeleton"
    VERBATIM)
  add_custom_target(${target}_gen DEPENDS ${skel})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} INTERFACE ${out})
endfunction()
