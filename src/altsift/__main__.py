from altsift.cli import main

main()
