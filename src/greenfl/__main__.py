from greenfl.cli import console_main

console_main()
