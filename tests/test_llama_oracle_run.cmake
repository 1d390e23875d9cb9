# Runs one llama.cpp oracle test (cmake -P): fails, with a message saying what to install, when
# Node.js or the npm references are missing -- a missing reference never counts as a pass.
if(NOT NODE OR NODE MATCHES "NOTFOUND$")
  message(FATAL_ERROR "Node.js was not found when configuring: install it (scripts/install-deps.sh), "
                      "run `npm ci` in tests/node, and re-run cmake")
endif()
get_filename_component(node_dir "${SCRIPT}" DIRECTORY)
if(NOT EXISTS "${node_dir}/node_modules/node-llama-cpp")
  message(FATAL_ERROR "${node_dir}/node_modules/node-llama-cpp is missing: run `npm ci` in ${node_dir}")
endif()
string(REPLACE "|" ";" args "${ARGS}")
list(TRANSFORM args REPLACE "^--shared-from-env$" "--shared;$ENV{SLM_SOURCE_DIR}/../shared")
execute_process(COMMAND "${NODE}" "${SCRIPT}" ${args} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "llama.cpp oracle failed (exit ${rc})")
endif()
