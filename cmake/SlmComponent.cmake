# Helpers for the component layout: the library is one object library per component
# (src/<component>/), bundled into `slm` and `slm_shared` by the top-level CMakeLists.txt.

# slm_add_component(NAME SOURCES src... [DEPS comp...] [LINK libs...])
function(slm_add_component name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LINK" ${ARGN})
  add_library(slm_${name} OBJECT ${ARG_SOURCES})
  target_include_directories(slm_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(slm_${name} PRIVATE slm_warnings)
  foreach(dep IN LISTS ARG_DEPS)
    target_include_directories(slm_${name} PUBLIC $<TARGET_PROPERTY:slm_${dep},INTERFACE_INCLUDE_DIRECTORIES>)
  endforeach()
  target_link_libraries(slm_${name} PUBLIC Threads::Threads ${ARG_LINK})
  set_property(GLOBAL PROPERTY SLM_DEPS_${name} ${ARG_DEPS})
endfunction()

# Collects the transitive component dependencies of the given components into OUT.
function(slm_component_closure out)
  set(result)
  set(todo ${ARGN})
  while(todo)
    list(POP_FRONT todo comp)
    if(NOT comp IN_LIST result)
      list(APPEND result ${comp})
      get_property(deps GLOBAL PROPERTY SLM_DEPS_${comp})
      list(APPEND todo ${deps})
    endif()
  endwhile()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

# slm_link_components(TARGET comp...): link a test or tool against some components (and what
# they depend on) only, so a test of one component builds while another is being worked on.
function(slm_link_components target)
  slm_component_closure(all ${ARGN})
  foreach(comp IN LISTS all)
    target_link_libraries(${target} PRIVATE slm_${comp})
  endforeach()
  target_link_libraries(${target} PRIVATE slm_warnings Threads::Threads m)
endfunction()

# slm_add_test(NAME SOURCES src... COMPONENTS comp... [LABELS l...]): a doctest executable
# registered with ctest, run from the build directory.
function(slm_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;COMPONENTS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE slm_doctest_main)
  slm_link_components(${name} ${ARG_COMPONENTS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT
    "SLM_SOURCE_DIR=${PROJECT_SOURCE_DIR};SLM_BUILD_DIR=${PROJECT_BINARY_DIR}")
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
