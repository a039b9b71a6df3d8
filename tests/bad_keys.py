"""Keys the grammar refuses (SPEC 2), for the bad-input tables of both protocols
(test_errors.py over Flight, test_http_errors.py over HTTP): the store refuses them with
the same message whichever protocol brought them.
"""

# (id, key, what the message must name)
BAD_KEYS = [
    ("dotdot-object", "sess/..", ".."),
    ("dotdot-session", "../obj", ".."),
    ("dotdot-app", "../sess/obj", ".."),
    ("dot-object", "sess/.", "'.'"),
    ("dot-session", "./obj", "'.'"),
    ("empty-middle-segment", "app//obj", "empty"),
    ("empty-last-segment", "sess/", "empty"),
    ("empty-first-segment", "/obj", "empty"),
    ("four-segments", "a/b/c/d", "a/b/c/d"),
    ("nul", "sess/ob\x00j", "ob\x00j"),
    ("control-char", "sess/ob\x01j", "ob\x01j"),
    ("newline", "sess/ob\nj", "ob\nj"),
    ("del-char", "sess/ob\x7fj", "ob\x7fj"),
    ("star-object-id", "sess/*", "'*'"),
    ("star-flamepy-object-id", "app/sess/*", "'*'"),
    ("long-segment-300-bytes", "sess/" + "x" * 300, "255"),
    ("long-segment-300-utf8-bytes", "sess/" + "é" * 150, "255"),
    ("backslash", "sess/a\\b", "a\\b"),
    # hostile paths: nothing may name a file outside the storage root
    ("absolute-path", "/etc/passwd", "empty"),
    ("absolute-flamepy-path", "/app/sess/obj", "/app/sess/obj"),
    ("double-slash-root", "//sess/obj", "//sess/obj"),
    ("unc-path", "\\\\server\\share/obj", "\\\\server\\share"),
    ("dotdot-deep", "app/../../../etc/passwd", "app/../../../etc/passwd"),
    ("ten-kb-segment", "sess/" + "x" * 10240, "255"),
    ("ten-kb-flamepy-segment", "app/" + "y" * 10240 + "/obj", "255"),
    # unicode tricks: controls that are not ASCII, and characters that make a key print as another
    ("c1-control-nel", "sess/a\x85b", "a\x85b"),
    ("c1-control-csi", "sess/a\x9b31mb", "a\x9b31mb"),
    ("rtl-override", "sess/evil\u202etxt.exe", "RIGHT-TO-LEFT OVERRIDE"),
    ("bidi-isolate", "app/\u2066sess/obj", "LEFT-TO-RIGHT ISOLATE"),
    ("line-separator", "sess/a\u2028b", "LINE SEPARATOR"),
    ("paragraph-separator", "sess/a\u2029b", "PARAGRAPH SEPARATOR"),
]
# keys the grammar rejects only where a ':' cannot be a version separator
BAD_PATH_ONLY_KEYS = [
    ("colon-in-path", "sess/b:c", "b:c"),
    ("colon-in-flamepy-path", "app/sess:x/obj", "sess:x"),
    ("windows-drive", "C:\\Windows/system32", "C:\\Windows"),
]
