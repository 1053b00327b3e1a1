"""Every exported lvmmed_ symbol is declared in lvmmed._lib, and vice versa."""

import unittest

import _support
from _support import _lib


class SymbolTest(unittest.TestCase):
    def test_declared_equals_exported(self):
        path = _lib.LIBRARY_PATH
        if not path:
            self.skipTest("path of the loaded library is unknown")
        exported = _support.exported_symbols(path)
        if exported is None:
            self.skipTest("nm is not available")
        exported = {s for s in exported if s.startswith("lvmmed_")}
        declared = set(_lib.DECLARED_FUNCTIONS)
        self.assertEqual(sorted(exported - declared), [], "exported but not declared in _lib._FUNCTIONS")
        self.assertEqual(sorted(declared - exported), [], "declared in _lib but not exported")
        self.assertEqual(_lib.MISSING_FUNCTIONS, ())

    def test_every_declaration_applied(self):
        for name in _lib.DECLARED_FUNCTIONS:
            if name in _lib.MISSING_FUNCTIONS:
                continue
            fn = getattr(_lib.lib, name)
            self.assertIsNotNone(fn.argtypes, name)
            self.assertIsNot(fn.restype, _lib.STATUS, name)
            if _lib._FUNCTIONS[name][0] is _lib.STATUS:
                self.assertIs(fn.errcheck, _lib._check_status, name)

    def test_no_duplicate_table_entries(self):
        # A repeated key in a dict literal silently wins, so check the source itself.
        import ast
        with open(_lib.__file__, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        tables = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", None) == "_FUNCTIONS" for t in n.targets)]
        self.assertEqual(len(tables), 1)
        keys = [k.value for k in tables[0].keys]
        self.assertEqual(len(keys), len(set(keys)), [k for k in keys if keys.count(k) > 1])
        self.assertEqual(tuple(keys), _lib.DECLARED_FUNCTIONS)


if __name__ == "__main__":
    unittest.main()
