# ctest registration of the llama.cpp oracle (tests/node/llama_oracle.mjs): random-weight models
# of both architectures in F16, Q8_0, Q4_0 and Q4_K_M made by slm-mkmodel at test time, compared
# teacher-forced with llama.cpp (node-llama-cpp); the llama test also runs stories260K from
# ../shared when it is there. Included from tests/CMakeLists.txt.
if(TARGET slm-logits AND TARGET slm-mkmodel)
  find_program(SLM_NODE node)
  foreach(arch llama qwen2)
    set(args --slm-logits $<TARGET_FILE:slm-logits> --mkmodel $<TARGET_FILE:slm-mkmodel>
             --workdir ${CMAKE_CURRENT_BINARY_DIR}/oracle-${arch} --arch ${arch}
             --types F16,Q8_0,Q4_0,Q4_K_M)
    if(arch STREQUAL "llama")
      list(APPEND args --shared-from-env)
    endif()
    list(JOIN args "|" joined)
    add_test(NAME test_llama_oracle_${arch}
             COMMAND ${CMAKE_COMMAND} -DNODE=${SLM_NODE}
                     -DSCRIPT=${PROJECT_SOURCE_DIR}/tests/node/llama_oracle.mjs
                     "-DARGS=${joined}" -P ${PROJECT_SOURCE_DIR}/tests/test_llama_oracle_run.cmake)
    set_tests_properties(test_llama_oracle_${arch} PROPERTIES
      ENVIRONMENT "SLM_SOURCE_DIR=${PROJECT_SOURCE_DIR};SLM_BUILD_DIR=${PROJECT_BINARY_DIR}"
      LABELS "oracle" TIMEOUT 300)
  endforeach()
  # deepseek2 (tiny: split k_b/v_b, sigmoid + groups; lite: fused kv_b, softmax), F16, Q8_0 and
  # the Q4_K_M mix (see deepseek2Args in llama_oracle.mjs for what llama.cpp cannot run).
  foreach(arch deepseek2 deepseek2-lite)
    set(args --slm-logits $<TARGET_FILE:slm-logits> --mkmodel $<TARGET_FILE:slm-mkmodel>
             --workdir ${CMAKE_CURRENT_BINARY_DIR}/oracle-${arch} --arch ${arch} --types F16,Q8_0,Q4_K_M)
    list(JOIN args "|" joined)
    add_test(NAME test_llama_oracle_${arch}
             COMMAND ${CMAKE_COMMAND} -DNODE=${SLM_NODE}
                     -DSCRIPT=${PROJECT_SOURCE_DIR}/tests/node/llama_oracle.mjs
                     "-DARGS=${joined}" -P ${PROJECT_SOURCE_DIR}/tests/test_llama_oracle_run.cmake)
    set_tests_properties(test_llama_oracle_${arch} PROPERTIES
      ENVIRONMENT "SLM_SOURCE_DIR=${PROJECT_SOURCE_DIR};SLM_BUILD_DIR=${PROJECT_BINARY_DIR}"
      LABELS "oracle" TIMEOUT 300)
  endforeach()
  # The trained model shipped in weights/ (issue 10): held-out prompts, teacher-forced and
  # free-running greedy answers against llama.cpp.
  set(args --slm-logits $<TARGET_FILE:slm-logits> --trained ${PROJECT_SOURCE_DIR}/weights/slm-logexplainer-q8_0.gguf
           --heldout ${PROJECT_SOURCE_DIR}/tests/data/logexplainer/heldout.jsonl --examples 8 --n-gen 160)
  list(JOIN args "|" joined)
  add_test(NAME test_llama_oracle_shipped
           COMMAND ${CMAKE_COMMAND} -DNODE=${SLM_NODE}
                   -DSCRIPT=${PROJECT_SOURCE_DIR}/tests/node/llama_oracle.mjs
                   "-DARGS=${joined}" -P ${PROJECT_SOURCE_DIR}/tests/test_llama_oracle_run.cmake)
  set_tests_properties(test_llama_oracle_shipped PROPERTIES
    ENVIRONMENT "SLM_SOURCE_DIR=${PROJECT_SOURCE_DIR};SLM_BUILD_DIR=${PROJECT_BINARY_DIR}"
    LABELS "oracle" TIMEOUT 300)
endif()
