from hlfnet.cli import main

raise SystemExit(main())
