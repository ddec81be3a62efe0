"""Study data: JSONL files, dataset specs and the shared machinery of dataset builders."""
