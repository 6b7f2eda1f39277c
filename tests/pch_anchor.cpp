// Anchors the shared precompiled header of the tests (tests/CMakeLists.txt); intentionally empty.
