#!/usr/bin/bash
echo "scenario: todo"
exit 1
