from proliferate.cli import main

raise SystemExit(main())
