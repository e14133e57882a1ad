using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Tests.Systemd;

public sealed class SdBusLayoutTests
{
    [Fact]
    public unsafe void VtableEntriesHaveTheLayoutOfSystemd242AndLater()
    {
        // uint64 (type:8 | flags:56), then a union of at most six pointers (method).
        Assert.Equal(56, sizeof(SdBusVtable));
        Assert.Equal(24, sizeof(SdBusError));
        Assert.Equal(0x04_4DUL, SdBusVtable.Word(LibSystemd.SD_BUS_VTABLE_METHOD, LibSystemd.SD_BUS_VTABLE_UNPRIVILEGED));
    }

    [Fact]
    public unsafe void TheVtableFormatReferenceIsLibsystemdsOwnSymbol()
    {
        var p = LibSystemd.VtableFormatReference;
        Assert.NotEqual(0, p);
        // sd_bus_object_vtable_format is 242: the format we lay out.
        Assert.Equal(242u, *(uint*)p);
        Assert.Equal(p, NativeLibrary.GetExport(NativeLibrary.Load("libsystemd.so.0"), "sd_bus_object_vtable_format"));
    }
}
