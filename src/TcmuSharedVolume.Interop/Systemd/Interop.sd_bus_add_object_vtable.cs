using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>vtable must stay valid (native memory) as long as the bus lives.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_add_object_vtable", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int sd_bus_add_object_vtable(nint bus, nint* slot, string path, string @interface, SdBusVtable* vtable, nint userdata);
}
