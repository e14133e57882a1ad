using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>slot null: the slot floats and is freed with the bus.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_add_object_manager", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int sd_bus_add_object_manager(nint bus, nint* slot, string path);
}
