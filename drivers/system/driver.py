from zaas_edge.driver import Driver, DriverOptions


class SystemOptions(DriverOptions):
    pass


class SystemDriver(Driver):
    Options = SystemOptions

    async def run(self, ctx):  # placeholder
        pass
