from wstool.cli.app import main

main()
